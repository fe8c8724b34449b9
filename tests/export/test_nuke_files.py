"""The generated Nuke files (gizmo, template comp, cat.json, .cat spec) against the one knob spec.

The .gizmo and .nk are parsed with tests/support/nukescript.py (Nuke's script syntax and
node stack), not compared as text.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from nuke_graph import NukeSession, instance_script
from nukescript import parse, parse_serialise_knob, upstream
from repo_paths import REPO
from stand_in_nuke import PluginRuntime

from corridorkey_export import gizmo as gz
from corridorkey_export import nuke_files
from corridorkey_export.nuke_contract import CHANNELS_IN, MODEL_ID, SCREENS
from corridorkey_model.keying.knobs import CAT_KNOBS, KNOBS, knob_table_markdown

NUKE_TYPE = {"float": 7, "int": 3}


@pytest.fixture(scope="module")
def gizmo():
    script = parse((REPO / nuke_files.GIZMO_PATH).read_text())
    assert [n.cls for n in script.nodes] == ["Gizmo"]
    return script.nodes[0]


@pytest.fixture(scope="module")
def template():
    return parse((REPO / nuke_files.TEMPLATE_PATH).read_text())


def expected_default(spec):
    return spec.default


def inference_nodes(gizmo):
    nodes = gizmo.by_class("Inference")
    assert [n.name for n in nodes] == [gz.INFERENCE_NODES[s.name] for s in reversed(SCREENS)]
    return {n.name: n for n in nodes}


def stand_in_cat(folder, screen="green"):
    """A .cat that loads in the model of Nuke (tests/support/nuke_graph.py): the stand-in CatFileCreator's record,
    naming a .pt that exists; no test here renders it."""
    folder.mkdir(parents=True, exist_ok=True)
    pt = folder / "model.pt"
    pt.write_bytes(b"never loaded: these tests run callbacks, not renders")
    cat = folder / next(s for s in SCREENS if s.name == screen).cat_filename
    cat.write_text(json.dumps({"torchScriptFile": str(pt), "_custom": {k.name: {"value": k.default} for k in CAT_KNOBS}}))
    return cat


def gizmo_node(plugins, knobs=None, hint=True, gpu_name="Not available", config="ocio://cg-config-latest",
               gizmo_text=None):
    """(session, node): the shipped gizmo loaded in the model of Nuke, as a script holding one CorridorKey node
    whose plate (and hint, unless ``hint`` is False) come from Read nodes; onCreate ran as on a script load."""
    gizmo = gizmo_text if gizmo_text is not None else REPO / nuke_files.GIZMO_PATH
    session = NukeSession({gz.GIZMO_CLASS: gizmo}, [plugins], ocio_config=config,
                          gpu=gpu_name != "Not available", gpu_name=gpu_name)
    session.load(instance_script(gz.GIZMO_CLASS, dict(knobs or {}), ["/plate.exr", "/hint.exr" if hint else None],
                                 name="CK"))
    return session, session.toNode("CK")


def logged(session, kind, name):
    """Index of the first log entry (kind, name, ...); -1 when there is none."""
    return next((i for i, e in enumerate(session.log) if e[:2] == (kind, name)), -1)


# --------------------------------------------------------------------------- generator


def test_committed_files_equal_the_generator_output():
    assert nuke_files.check(REPO) == [], "run: python -m corridorkey_export.nuke_files --write"


def test_check_mode_names_a_stale_file_and_write_repairs_it(tmp_path):
    runner = CliRunner()
    assert runner.invoke(nuke_files.main, ["--write", "--root", str(tmp_path)]).exit_code == 0
    assert runner.invoke(nuke_files.main, ["--check", "--root", str(tmp_path)]).exit_code == 0
    gizmo = tmp_path / nuke_files.GIZMO_PATH
    gizmo.write_text(gizmo.read_text().replace("R 0 10", "R 0 5"))
    result = runner.invoke(nuke_files.main, ["--check", "--root", str(tmp_path)])
    assert result.exit_code == 1 and nuke_files.GIZMO_PATH in result.output
    assert runner.invoke(nuke_files.main, ["--write", "--root", str(tmp_path)]).exit_code == 0
    assert nuke_files.check(tmp_path) == []


def test_cli_refuses_no_action():
    result = CliRunner().invoke(nuke_files.main, [])
    assert result.exit_code == 2 and "exactly one of" in result.output


# --------------------------------------------------------------------------- where Nuke looks


def cattery_packages(plugin_path):
    """What Nuke's Cattery menu lists, by the rule of nukescripts/cattery.py (Foundry's code, as facts):
    every plugin-path folder named 'cattery' in any case, walked for cat.json files, whose cats'
    filepath and icon are relative to the cat.json's folder and whose minimum Nuke version is met."""
    found = []
    for folder in plugin_path:
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            if name.lower() != "cattery":
                continue
            for root, _, files in os.walk(os.path.join(folder, name)):
                if "cat.json" in files:
                    data = json.loads(Path(root, "cat.json").read_text())
                    found += [(Path(root), cat) for cat in data["cats"]
                              if data.get("minimum_nuke_version_required", 13.1) <= 16.0]
    return found


def _nuke_path_route_plugin_path(monkeypatch):
    """The plugin path of a session started with NUKE_PATH=<repository>/nuke: that folder plus what its init.py adds."""
    nuke = PluginRuntime()
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    runpy.run_path(str(REPO / nuke_files.NUKE_INIT_PATH))
    return [str(REPO / "nuke")] + [path for kind, path in nuke.events if kind == "pluginAddPath"]


def test_repository_package_is_found_by_the_cattery_menu_through_nuke_path(monkeypatch):
    [(package, cat)] = cattery_packages(_nuke_path_route_plugin_path(monkeypatch))
    assert package == REPO / nuke_files.PACKAGE_DIR
    assert (package / cat["filepath"]).is_file() and cat["filepath"] == "CorridorKey.gizmo"
    assert (package / cat["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cat["name"] == gz.GIZMO_CLASS


def test_install_builds_a_cattery_package_in_the_nuke_home(tmp_path):
    cat, blue = tmp_path / "green.cat", tmp_path / "blue.cat"
    cat.write_bytes(b"green cat")
    blue.write_bytes(b"blue cat")
    home = tmp_path / ".nuke"
    home.mkdir()
    (home / "init.py").write_text("import nuke\nnuke.pluginAddPath('./other')")
    for _ in range(2):  # idempotent
        result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--cat", str(cat),
                                                      "--blue-cat", str(blue), "--root", str(REPO)])
        assert result.exit_code == 0, result.output
    package = home / "Cattery" / "CorridorKey"
    names = {p.name for p in package.iterdir()}
    assert names == {"CorridorKey.gizmo", "cat.json", "CorridorKey.png", "CorridorKey_template.nk", "menu.py",
                     "corridorkey_create_cat.py", "corridorkey_cat_spec.json", "corridorkey_verify.py",
                     "CorridorKey.cat", "CorridorKeyBlue.cat"}
    assert (package / "CorridorKey.cat").read_bytes() == b"green cat"
    assert (package / "CorridorKeyBlue.cat").read_bytes() == b"blue cat"
    # ~/.nuke is on the plugin path by default (Foundry: "Installing Plug-ins"): the Cattery menu finds it.
    [(found, entry)] = cattery_packages([str(home)])
    assert found == package and (found / entry["filepath"]).is_file()
    # One registration, forward slashes, the user's own lines kept.
    init = (home / "init.py").read_text()
    assert init.startswith("import nuke\nnuke.pluginAddPath('./other')\n")
    assert init.count(f"nuke.pluginAddPath({package.absolute().as_posix()!r})") == 1
    assert init.count(nuke_files.INIT_MARK) == 1
    assert not (package / "__init__.py").exists()


def test_install_replaces_the_registration_of_the_earlier_layout(tmp_path):
    home = tmp_path / ".nuke"
    home.mkdir()
    old = ("# CorridorKey plugin path (added by corridorkey_export.nuke_files --install-to)\nimport nuke\n"
           f"nuke.pluginAddPath({str(home / 'CorridorKey')!r})\n")
    (home / "init.py").write_text("# mine\n" + old + "# also mine\n")
    nuke_files.install(REPO, home)
    init = (home / "init.py").read_text()
    assert "CorridorKey plugin path" not in init and str(home / "CorridorKey") + "'" not in init
    assert init.startswith("# mine\n# also mine\n") and init.count(nuke_files.INIT_MARK) == 1


def test_install_refuses_a_missing_cat(tmp_path):
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(tmp_path), "--cat",
                                                  str(tmp_path / "missing.cat"), "--root", str(REPO)])
    assert result.exit_code == 1 and "missing.cat" in result.output
    assert not (tmp_path / "Cattery").exists()


def test_install_keeps_an_init_py_that_is_not_utf8_byte_for_byte(tmp_path):
    """An older init.py in Latin-1 (valid Python with its coding line): registered, its own bytes unchanged."""
    home = tmp_path / ".nuke"
    home.mkdir()
    mine = "# -*- coding: latin-1 -*-\n# Compositing caf\xe9 tools\nimport nuke\n".encode("latin-1")
    (home / "init.py").write_bytes(mine)
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--root", str(REPO)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    written = (home / "init.py").read_bytes()
    package = (home / "Cattery" / "CorridorKey").absolute().as_posix()
    assert written.startswith(mine)
    assert written[len(mine):].decode("ascii") == nuke_files.init_block(home / "Cattery" / "CorridorKey")
    assert f"nuke.pluginAddPath({package!r})" in written.decode("latin-1")


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder nobody can write to: a read-only tmpfs as root (permissions do not stop root), else mode 0555."""
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "init.py").write_text("# mine\n")
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return folder
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "init.py").write_text("# mine\n")
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(tmp_path / "src"), str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here: {mounted.stderr.strip()}")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True)
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)
    pytest.skip("a read-only bind mount is writable here")


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions and mounts")
def test_install_into_a_read_only_folder_says_so_and_touches_nothing(tmp_path):
    import subprocess

    home = _read_only_folder(tmp_path)
    try:
        before = sorted(p.name for p in home.iterdir())
        result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--root", str(REPO)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert str(home) in result.output and "not writable" in result.output and "nothing was changed" in result.output
        assert sorted(p.name for p in home.iterdir()) == before
        assert (home / "init.py").read_text() == "# mine\n"
    finally:
        if os.geteuid() != 0:
            home.chmod(0o755)
        else:
            subprocess.run(["umount", "-l", str(home)], capture_output=True)


def test_install_stops_before_touching_anything_when_the_package_folder_cannot_be_made(tmp_path):
    home = tmp_path / ".nuke"
    home.mkdir()
    (home / "Cattery").write_text("a file where the Cattery folder goes")
    (home / "init.py").write_text("# mine\n")
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--root", str(REPO)])
    assert result.exit_code == 1 and "Cattery" in result.output and "Traceback" not in result.output, result.output
    assert (home / "init.py").read_text() == "# mine\n"
    assert sorted(p.name for p in home.iterdir()) == ["Cattery", "init.py"]


def test_nuke_path_route_adds_the_package_folder(monkeypatch):
    """NUKE_PATH=<repository>/nuke: init.py puts gizmos/ (for the Cattery menu) and the package folder
    (for the node class in every session) on the plugin path."""
    nuke = PluginRuntime()
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    runpy.run_path(str(REPO / nuke_files.NUKE_INIT_PATH))
    assert nuke.events == [("pluginAddPath", (REPO / "gizmos").as_posix()),
                           ("pluginAddPath", (REPO / nuke_files.PACKAGE_DIR).as_posix())]


def test_menu_pastes_the_template_and_never_opens_it(monkeypatch):
    nuke = PluginRuntime()
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    runpy.run_path(str(REPO / nuke_files.MENU_PATH))
    command = nuke.commands["Nodes/CorridorKey/Insert template comp"]
    command()
    assert nuke.events[-1] == ("nodePaste", (REPO / nuke_files.TEMPLATE_PATH).as_posix())
    assert not hasattr(nuke, "scriptOpen")  # the stand-in has no scriptOpen: calling it would have failed


def test_nuke_folder_is_not_an_importable_package():
    assert not (REPO / "nuke" / "__init__.py").exists()
    assert not list((REPO / "nuke").rglob("nuke.py"))


# --------------------------------------------------------------------------- gizmo knobs


def panel_knobs():
    """The model knobs the gizmo shows on its panel (auto_hint is computed from the Hint input and Hint Channel)."""
    return [k for k in KNOBS if k.name not in gz.COMPUTED_KNOBS or k.name in gz.PANEL_AND_COMPUTED_KNOBS]


def test_every_model_knob_has_a_gizmo_knob_of_the_right_type_range_and_default(gizmo):
    assert [k.name for k in KNOBS if k not in panel_knobs()] == ["auto_hint", "quality"]
    # quality: the gizmo's Quality menu, its .cat choices then Auto (Preview in proxy mode)
    assert gizmo.user_knob(gz.QUALITY_MODE_KNOB).menu == ["Final", "Preview", "Auto"]
    for spec in panel_knobs():
        knob = gizmo.user_knob(spec.name)
        assert knob.label == spec.label
        assert knob.tooltip.startswith(spec.tooltip)
        if spec.choices:
            assert knob.type_id == 4 and knob.menu == list(spec.choices)
            assert gizmo.value(spec.name) == spec.choices[int(spec.default)]
        else:
            assert knob.type_id == NUKE_TYPE[spec.kind]
            if spec.kind == "float":  # a slider: its range; an Int knob (3) takes no range in .nk syntax
                assert knob.range == (spec.minimum, spec.maximum)
            assert float(gizmo.value(spec.name)) == spec.default


def test_input_gamma_explains_the_ocio_conversion(gizmo):
    knob = gizmo.user_knob("gamma_input")
    assert gizmo.value("gamma_input") == "sRGB"  # the OCIO node hands the network sRGB
    assert "OCIO" in knob.tooltip and "bypass" in knob.tooltip


def test_gizmo_has_gpu_half_precision_output_hint_screen_and_colour_knobs(gizmo):
    assert gizmo.n_inputs == 3  # Plate, Hint, GarbageMatte
    assert gizmo.user_knob("useGPUIfAvailable").type_id == 6 and gizmo.value("useGPUIfAvailable") == "true"
    half = gizmo.user_knob("halfPrecision")
    assert half.type_id == 6 and half.label == "Optimize for Speed and Memory"
    assert gizmo.value("halfPrecision", "false") == "false"
    assert gizmo.user_knob("output_mode").menu == list(gz.OUTPUT_MODES)
    assert gizmo.value("output_mode") is None  # first item: comp-ready
    assert gizmo.user_knob("hint_channel").menu == ["alpha", "red", "luminance", "automatic"]
    assert gizmo.user_knob("screen").menu == [s.label for s in SCREENS] == ["Green", "Blue"]
    model_file = gizmo.user_knob("modelFile")
    assert model_file.type_id == 41 and model_file.text == f"{gz.INFERENCE_NODE}.modelFile"
    assert gizmo.user_knob("working_colorspace").text == "ToNetwork.in_colorspace"
    assert gizmo.user_knob("network_colorspace").text == "ToNetwork.out_colorspace"
    assert gizmo.user_knob("status").type_id == 26


def test_inference_nodes_hold_cat_knobs_only_as_serialised_links(gizmo):
    """Each Inference node links every .cat knob in serialiseKnob; no plain .cat-knob lines (they do not
    exist before the .cat loads)."""
    for screen in SCREENS:
        inference = inference_nodes(gizmo)[gz.INFERENCE_NODES[screen.name]]
        assert inference.value("modelFile") == f"[lsearch -inline [plugins -all {screen.cat_filename}] *.cat]"
        assert inference.expression("useGPUIfAvailable") == "parent.useGPUIfAvailable"
        assert inference.expression("halfPrecision") == "parent.halfPrecision"
        for spec in CAT_KNOBS:
            assert spec.name not in inference.knobs, f"plain .cat knob line {spec.name} in {inference.name}"
        links = parse_serialise_knob(inference.value("serialiseKnob"))
        assert list(links) == [k.name for k in CAT_KNOBS]  # the live knobs and cpu_bf16 (issue #29)
        model_knobs = gizmo.node(gz.MODEL_KNOBS_NODE)
        for spec in CAT_KNOBS:
            if spec.name in gz.COMPUTED_KNOBS:  # computed at render time by ModelKnobs' expressions
                assert links[spec.name] == f"{{{gz.MODEL_KNOBS_NODE}.{spec.name}}}"
                assert model_knobs.user_knob(spec.name).type_id == 3 and model_knobs.expression(spec.name)
            else:
                assert links[spec.name] == f"{{parent.{spec.name}}}", f"{spec.name} is not linked to the gizmo knob"
                gizmo.user_knob(spec.name)  # the link target exists
        # Only the chosen screen's node is enabled, so a missing blue .cat is never loaded for Green.
        assert inference.expression("disable") == f"parent.screen != {SCREENS.index(screen)}"


def test_on_create_validates_before_reading_the_cat_and_names_a_missing_file(gizmo, tmp_path):
    session, node = gizmo_node(tmp_path / "empty")  # nothing on the plugin path
    assert logged(session, "forceValidate", "CK.Inference") >= 0
    assert logged(session, "forceValidate", "CK.InferenceBlue") == -1  # disabled (Green): never loaded
    [warning] = session.warnings
    assert logged(session, "forceValidate", "CK.Inference") < logged(session, "warning", warning)
    assert "CorridorKey.cat" in warning and "not found" in warning and "Traceback" not in warning
    assert node["status"].value() == warning
    # FromNetwork is set to the inverse of ToNetwork.
    from_net = node.node("FromNetwork")
    assert (from_net["in_colorspace"].value(), from_net["out_colorspace"].value()) == ("color_picking", "scene_linear")


def test_on_create_is_quiet_when_the_cat_is_there(gizmo, tmp_path):
    stand_in_cat(tmp_path / "plugins")
    session, node = gizmo_node(tmp_path / "plugins", gpu_name="Stand-in GPU")
    assert session.warnings == [] and node["status"].value() == ""
    assert node["gpuName"].value() == "Stand-in GPU"


def test_choosing_blue_without_the_blue_cat_says_so(gizmo, tmp_path):
    stand_in_cat(tmp_path / "plugins")
    session, node = gizmo_node(tmp_path / "plugins")
    assert session.warnings == []
    node.user_set("screen", "Blue")  # the artist picks Blue in the panel: knobChanged
    [warning] = session.warnings
    assert "CorridorKeyBlue.cat" in warning and "blue" in warning
    node.user_set("despill_strength", 3.0)  # other knobs: nothing to do
    assert len(session.warnings) == 1


def test_auto_hint_is_decided_at_render_time_not_by_python(gizmo):
    """No panel knob and no Python sets auto_hint: ModelKnobs computes it by expression (#26 item 6)."""
    assert "auto_hint" not in [k.name for k in gizmo.user_knobs]
    for script in ("onCreate", "knobChanged"):
        assert "auto_hint" not in gizmo.value(script)
    expr = gizmo.node(gz.MODEL_KNOBS_NODE).expression("auto_hint")
    assert "[exists parent.input1]" in expr and "parent.hint_channel" in expr
    assert "automatic" in gizmo.user_knob("hint_channel").tooltip and "Status" in gizmo.user_knob("hint_channel").tooltip
    for name in ("gamma_input", "despill_strength", "refiner_strength", "despeckle_size", "screen"):
        assert "+INVISIBLE" not in gizmo.user_knob(name).flags


@pytest.mark.parametrize("script", ["onCreate", "knobChanged"])
def test_unconnected_hint_input_uses_the_automatic_hint_and_says_so(gizmo, tmp_path, script):
    stand_in_cat(tmp_path / "plugins")
    session, node = gizmo_node(tmp_path / "plugins", hint=script == "knobChanged")
    if script == "knobChanged":
        assert node["status"].value() == ""
        node.user_connect(1, None)  # the artist disconnects the hint: knobChanged with inputChange
    status = node["status"].value()
    assert "no Hint input is connected" in status and "automatic hint" in status
    assert session.warnings == []  # a note, not a problem: nothing in the error console
    assert node.node("ModelKnobs")["auto_hint"].value() == 1  # and the render-time expression agrees


def test_connected_hint_uses_the_hint_input_unless_automatic_is_chosen(gizmo, tmp_path):
    stand_in_cat(tmp_path / "plugins")
    session, node = gizmo_node(tmp_path / "plugins")
    assert node["status"].value() == "" and node.node("ModelKnobs")["auto_hint"].value() == 0
    node.user_set("hint_channel", "automatic")
    assert "Hint Channel is automatic" in node["status"].value()
    assert node.node("ModelKnobs")["auto_hint"].value() == 1
    node.user_set("hint_channel", "red")
    assert node["status"].value() == "" and node.node("ModelKnobs")["auto_hint"].value() == 0


def test_missing_cat_and_automatic_hint_share_the_status_line(gizmo, tmp_path):
    session, node = gizmo_node(tmp_path / "empty", hint=False)
    [warning] = session.warnings  # only the missing .cat is a warning
    lines = node["status"].value().split("\n")
    assert lines[0] == warning and "CorridorKey.cat" in warning and "automatic hint" in lines[1]


def test_on_create_turns_any_failure_into_a_message(gizmo, tmp_path):
    """A gizmo whose blue Inference node is not where onCreate looks (renamed): setup fails inside, and Status
    says so instead of a traceback."""
    text = (REPO / nuke_files.GIZMO_PATH).read_text()
    assert text.count("name InferenceBlue\n") == 1
    session, node = gizmo_node(tmp_path / "empty", knobs={"screen": "Blue"},
                               gizmo_text=text.replace("name InferenceBlue\n", "name InferenceBlue2\n"))
    [warning] = session.warnings  # the load did not raise
    assert warning.startswith("CorridorKey: the node could not be set up:") and node["status"].value() == warning


# --------------------------------------------------------------------------- gizmo graph


def test_graph_plate_through_ocio_and_hint_into_every_inference_node(gizmo):
    plate, hint = gizmo.node("Plate"), gizmo.node("Hint")
    assert plate.cls == hint.cls == "Input"
    assert plate.value("number", "0") == "0" and hint.value("number") == "1"
    for inference in inference_nodes(gizmo).values():
        copy = upstream(inference.inputs[0])
        assert copy.cls == "Copy" and copy.value("from0") == copy.value("to0") == "rgba.alpha"
        to_net = upstream(copy.inputs[0])  # B: the plate, converted for the network
        assert to_net.cls == "OCIOColorSpace" and to_net.name == "ToNetwork"
        assert (to_net.value("in_colorspace"), to_net.value("out_colorspace")) == ("scene_linear", "color_picking")
        assert to_net.expression("disable") == "parent.gamma_input == 1"  # Linear: the model encodes itself
        crop = upstream(to_net.inputs[0])  # overscan dropped: the network keys exactly the format
        assert crop.cls == "Crop" and crop.value("crop") == "false" and upstream(crop.inputs[0]) is plate
        garbage_copy = upstream(copy.inputs[1])  # A: the hint's chosen channel in alpha, untouched by OCIO ...
        assert garbage_copy.cls == "Copy" and garbage_copy.name == "GarbageIntoAlpha"
        assert garbage_copy.expression("disable") == f"{gz.MODEL_KNOBS_NODE}.auto_hint != 2"  # ... or the matte's
        garbage_fit = upstream(garbage_copy.inputs[1])
        assert garbage_fit.cls == "Reformat" and upstream(garbage_fit.inputs[0]) is gizmo.node("GarbageMatte")
        assert gizmo.node("GarbageMatte").value("number") == "2"
        hint_expr = upstream(garbage_copy.inputs[0])
        fit = upstream(hint_expr.inputs[0])  # the hint fitted to the plate's format, nearest pixel
        assert hint_expr.cls == "Expression" and fit.cls == "Reformat" and upstream(fit.inputs[0]) is hint
        assert (fit.value("type"), fit.value("resize"), fit.value("filter"), fit.value("box_fixed")) == \
            ("to box", "distort", "impulse", "true")
        assert (fit.expression("box_width"), fit.expression("box_height")) == ("Plate.width", "Plate.height")
        expr = hint_expr.value("expr3")
        assert "parent.hint_channel == 0 ? a" in expr and "parent.hint_channel == 1 ? r" in expr
        assert "0.2126*r + 0.7152*g + 0.0722*b" in expr


def test_graph_screen_switch_then_back_to_working_space_before_premultiply(gizmo):
    nodes = inference_nodes(gizmo)
    [output] = gizmo.by_class("Output")
    switch = upstream(output.inputs[0])
    assert switch.cls == "Switch" and switch.expression("which") == "parent.output_mode"
    comp, straight, raw, matte = (upstream(i) for i in switch.inputs)
    assert raw.cls == "Switch" and raw.name == "TemporalSwitch"  # Temporal 0: its input 0, the model's output
    screen_switch = upstream(raw.inputs[0])
    assert screen_switch.cls == "Switch" and screen_switch.expression("which") == "parent.screen"
    assert [upstream(i).name for i in screen_switch.inputs] == [gz.INFERENCE_NODES[s.name] for s in SCREENS]
    assert all(upstream(i) is nodes[upstream(i).name] for i in screen_switch.inputs)
    # 0 comp-ready: fg back to the working space (OCIO), network alpha kept, then Premult
    assert comp.cls == "Premult"
    keep_alpha = upstream(comp.inputs[0])
    assert keep_alpha.cls == "Copy" and keep_alpha.value("from0") == keep_alpha.value("to0") == "rgba.alpha"
    from_net = upstream(keep_alpha.inputs[0])
    assert from_net.cls == "OCIOColorSpace" and from_net.name == "FromNetwork"
    assert (from_net.value("in_colorspace"), from_net.value("out_colorspace")) == ("color_picking", "scene_linear")
    assert upstream(from_net.inputs[0]) is raw and upstream(keep_alpha.inputs[1]) is raw
    # ToNetwork keeps FromNetwork its inverse when the user changes a colour space.
    assert "FromNetwork" in gizmo.node("ToNetwork").value("knobChanged")
    # 1 straight: the same conversion, no premultiply; 3 matte only (alpha into every channel)
    assert straight is keep_alpha
    assert matte.cls == "Shuffle" and upstream(matte.inputs[0]) is raw
    assert [matte.value(c) for c in ("red", "green", "blue", "alpha")] == ["alpha"] * 4


# --------------------------------------------------------------------------- template, cat.json, .cat spec


def test_template_pastes_without_errors_placeholders_that_render(template):
    """#26 item 13: no Read of a file that does not exist (red errors on paste): Constant placeholders."""
    assert template.by_class("Root") == []  # pasting must not change the user's project settings
    assert template.by_class("Read") == []
    [ck] = template.by_class(gz.GIZMO_CLASS)
    [plate] = ck.inputs  # the Hint input is left unconnected: the node makes the automatic hint
    assert plate.cls == "Constant" and plate.name == "PlatePlaceholder"
    r, g, b, _a = (float(v) for v in plate.value("color").split())
    assert g > 3 * max(r, b)  # a green screen colour
    [merge] = template.by_class("Merge2")
    background, a_input = merge.inputs  # Merge2: input 0 = B, input 1 = A
    assert a_input is ck and background.cls == "Constant" and merge.value("operation", "over") == "over"
    [write] = template.by_class("Write")
    assert write.inputs == [merge]
    [note] = template.by_class("StickyNote")
    for needle in ("raw data", "CorridorKey.cat", "PlatePlaceholder", "automatic hint"):
        assert needle in note.value("label")


def test_cat_json_describes_the_package():
    data = json.loads((REPO / nuke_files.CAT_JSON_PATH).read_text())
    [entry] = data["cats"]
    folder = (REPO / nuke_files.CAT_JSON_PATH).parent
    assert (folder / entry["filepath"]).is_file() and entry["name"] == gz.GIZMO_CLASS
    assert (folder / entry["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["minimum_nuke_version_required"] >= 15.1


def test_cat_spec_is_the_knob_spec():
    data = json.loads((REPO / nuke_files.CAT_SPEC_PATH).read_text())
    assert [(e["name"], e["modelId"], e["cat"]) for e in data["screens"]] == \
        [(s.name, s.model_id, s.cat_filename) for s in SCREENS]
    assert data["screens"][0]["modelId"] == MODEL_ID and data["channelsIn"].split(",") == list(CHANNELS_IN)
    assert data["knobs"] == [json.loads(json.dumps(k.to_dict())) for k in CAT_KNOBS]


@pytest.mark.parametrize("page", ["README.md", "docs/nuke.md"])
def test_nuke_docs_hold_the_knob_table_verbatim(page):
    text = (REPO / page).read_text()
    assert knob_table_markdown() in text
    for needle in ("corridorkey_create_cat.py", "--install-to", "NUKE_PATH", "CorridorKey.cat", "Cattery/CorridorKey",
                   "--nukex -i -t", "OCIO", "ACES", "color_picking", "scene_linear"):
        assert needle in text


# --------------------------------------------------------------------------- the real wrapper class


def test_scripted_wrapper_attributes_are_the_gizmo_knobs(gizmo):
    """The gizmo's Inference knobs are attributes of the scripted CorridorKeyNuke with the same types.

    Scripts the real wrapper class around a tiny stand-in network (no checkpoint):
    TorchScript types the attributes exactly as the exported file will.
    """
    torch = pytest.importorskip("torch")
    wrapper = pytest.importorskip("corridorkey_export.wrapper")

    class TinyNet(torch.nn.Module):
        def forward(self, x):
            return x[:, 3:4], x[:, 0:3], x

    scripted = torch.jit.script(wrapper.CorridorKeyNuke(torch.jit.script(TinyNet()), 64))
    for inference in inference_nodes(gizmo).values():
        assert set(parse_serialise_knob(inference.value("serialiseKnob"))) == {k.name for k in CAT_KNOBS}
    for spec in CAT_KNOBS:
        value = getattr(scripted, spec.name)
        assert type(value) is spec.python_type and value == spec.default
        if spec not in panel_knobs():  # computed by ModelKnobs: every value of the spec's range
            for v in (spec.minimum, spec.maximum):
                setattr(scripted, spec.name, spec.python_type(v))
            continue
        knob = gizmo.user_knob(spec.name)
        lo, hi = knob.range if knob.range else ((0, len(knob.menu) - 1) if knob.menu else (spec.minimum, spec.maximum))
        for v in (lo, hi):  # every value the gizmo offers is accepted by the scripted attribute
            setattr(scripted, spec.name, spec.python_type(v))
            assert getattr(scripted, spec.name) == v


# --------------------------------------------------------------------------- #23: messages, load errors, versions


def test_missing_cat_message_mentions_model_file_only_for_the_screen_it_links(gizmo, tmp_path):
    """Model File links only the green Inference node's modelFile: the blue message must not send users there."""
    assert gz.MODEL_FILE_SCREEN == "green"
    assert gizmo.user_knob("modelFile").text == f"{gz.INFERENCE_NODE}.modelFile"  # type 41: a link
    green, _ = gizmo_node(tmp_path / "empty")
    blue, _ = gizmo_node(tmp_path / "empty", knobs={"screen": "Blue"})
    [green_warning], [blue_warning] = green.warnings, blue.warnings
    assert "Model File" in green_warning and "CorridorKey.cat" in green_warning
    assert "Model File" not in blue_warning and "CorridorKeyBlue.cat" in blue_warning


def test_a_cat_that_loads_with_an_error_is_reported_on_the_status_line(gizmo, tmp_path):
    cat = tmp_path / "plugins" / "CorridorKey.cat"
    cat.parent.mkdir()
    cat.write_bytes(b"not a cat")
    session, node = gizmo_node(tmp_path / "plugins")
    assert 0 <= logged(session, "forceValidate", "CK.Inference") < logged(session, "hasError", "CK.Inference")
    [warning] = session.warnings
    assert str(cat) in warning and "error" in warning and "corridorkey_create_cat.py" in warning
    assert node["status"].value() == warning
    assert "error" in gizmo.user_knob("status").tooltip  # the tooltip says what Status checks


def _exec_with_nuke(monkeypatch, path, version):
    nuke = PluginRuntime(version)
    monkeypatch.setitem(sys.modules, "nuke", nuke)
    return nuke, runpy.run_path(str(path))


@pytest.mark.parametrize("script", [nuke_files.NUKE_INIT_PATH, nuke_files.MENU_PATH])
def test_startup_scripts_refuse_a_nuke_older_than_the_minimum_and_say_why(monkeypatch, script):
    old, module = _exec_with_nuke(monkeypatch, REPO / script, (15, 0))
    assert module["MINIMUM_NUKE"] == tuple(int(v) for v in str(gz.MINIMUM_NUKE).split("."))
    [warning] = [e[1] for e in old.events if e[0] == "warning"]
    assert "15.1 or later" in warning and "15.0" in warning
    assert not [e for e in old.events if e[0] in ("pluginAddPath", "addMenu", "addCommand")]
    new, _ = _exec_with_nuke(monkeypatch, REPO / script, (15, 1))
    assert not [e for e in new.events if e[0] == "warning"]
    assert [e for e in new.events if e[0] in ("pluginAddPath", "addCommand")]


def test_installed_init_block_registers_only_in_a_new_enough_nuke(tmp_path, monkeypatch):
    package = tmp_path / "Cattery" / "CorridorKey"
    block = nuke_files.init_block(package)
    assert len(block.splitlines()) == 3  # the mark, import, one statement: what a reinstall replaces
    for version, registered in (((14, 0), False), ((15, 1), True), ((17, 0), True)):
        nuke = PluginRuntime(version)
        monkeypatch.setitem(sys.modules, "nuke", nuke)
        exec(compile(block, "init.py", "exec"), {})
        assert (("pluginAddPath", package.absolute().as_posix()) in nuke.events) == registered
        assert bool([e for e in nuke.events if e[0] == "warning"]) != registered


# --------------------------------------------------------------------------- #26: colour checks, GPU, panel


NO_COLOR_PICKING_CONFIG = """ocio_profile_version: 2
roles:
  default: lin
  scene_linear: lin
colorspaces:
  - !<ColorSpace> {name: lin}
  - !<ColorSpace> {name: srgb_tx}
"""


def test_status_names_a_failing_colour_conversion(gizmo, tmp_path):
    """#26 item 5: a config without the color_picking role leaves ToNetwork (and FromNetwork) in error; Status
    says so. The OCIOColorSpace nodes' error comes from the session's real config (PyOpenColorIO)."""
    stand_in_cat(tmp_path / "plugins")
    config = tmp_path / "no_color_picking.ocio"
    config.write_text(NO_COLOR_PICKING_CONFIG)
    session, node = gizmo_node(tmp_path / "plugins", config=str(config))
    assert 0 <= logged(session, "forceValidate", "CK.ToNetwork") < logged(session, "hasError", "CK.ToNetwork")
    [warning] = session.warnings
    assert "colour conversion fails (ToNetwork, FromNetwork)" in warning and "color_picking" in warning
    assert node["status"].value() == warning
    # Colour spaces of that config chosen in the panel: the conversion works, and Status is clear again.
    node.user_set("network_colorspace", "srgb_tx")
    assert node["status"].value() == "" and not node.node("ToNetwork").hasError()


ACES1_LIKE_CONFIG = """ocio_profile_version: 1
roles:
  scene_linear: ACES - ACEScg
  color_picking: Output - sRGB
  default: ACES - ACEScg
displays:
  sRGB:
    - !<View> {name: sRGB, colorspace: Output - sRGB}
active_displays: [sRGB]
active_views: [sRGB]
colorspaces:
  - !<ColorSpace>
    name: ACES - ACEScg
    family: ACES
  - !<ColorSpace>
    name: Output - sRGB
    family: Output
    from_reference: !<ExponentTransform> {value: [2.2, 2.2, 2.2, 1], direction: inverse}
"""


def test_status_warns_when_the_network_space_is_a_display_transform(gizmo, tmp_path):
    """#26 item 5: an ACES 1.x-style config maps color_picking to Output - sRGB (a tone-mapped display transform):
    read through the real PyOpenColorIO from the Root's customOCIOConfigPath."""
    pytest.importorskip("PyOpenColorIO")
    stand_in_cat(tmp_path / "plugins")
    config = tmp_path / "aces1.ocio"
    config.write_text(ACES1_LIKE_CONFIG)
    session, _node = gizmo_node(tmp_path / "plugins", config=str(config))
    [warning] = session.warnings
    assert "Output - sRGB" in warning and "display or view transform" in warning and "Texture" in warning
    # the built-in OCIO 2 config's color_picking (sRGB Encoded Rec.709) is a scene-referred texture space: quiet
    session, _node = gizmo_node(tmp_path / "plugins", config="ocio://cg-config-latest")
    assert session.warnings == []
    # ... while an OCIO 2 display-referred space chosen as Network Colorspace is caught by its reference type
    session, node = gizmo_node(tmp_path / "plugins", config="ocio://studio-config-latest",
                               knobs={"network_colorspace": '"sRGB - Display"'})
    [warning] = session.warnings
    assert "sRGB - Display, a display or view transform" in warning


def test_half_precision_is_disabled_without_a_gpu(gizmo, tmp_path):
    """#26 item 14: the knob acts only on the GPU; with gpuName "Not available" it is greyed out."""
    stand_in_cat(tmp_path / "plugins")
    for gpu, enabled in (("Not available", False), ("NVIDIA RTX A6000", True)):
        session, node = gizmo_node(tmp_path / "plugins", gpu_name=gpu)
        assert node["halfPrecision"].enabled() == enabled
        assert ("setEnabled", "CK.halfPrecision", enabled) in session.log


def test_status_is_refreshed_when_the_panel_opens(gizmo, tmp_path):
    """#26 item 14: a .cat installed after the node was made shows up when the panel opens (showPanel)."""
    session, node = gizmo_node(tmp_path / "plugins")
    assert "not found" in node["status"].value()
    stand_in_cat(tmp_path / "plugins")
    node.open_panel()
    assert node["status"].value() == ""


def test_status_names_a_hint_of_another_aspect_ratio(gizmo, tmp_path):
    """A hint of another aspect ratio is stretched by HintToPlateFormat (the pipeline refuses it): Status says so,
    with both sizes read from the inputs' formats (Node.width/height); a half-resolution hint is quiet."""
    import numpy as np

    stand_in_cat(tmp_path / "plugins")
    for hint_shape, warned in (((10, 10), True), ((10, 14), False), ((20, 28), False)):
        session = NukeSession({gz.GIZMO_CLASS: REPO / nuke_files.GIZMO_PATH}, [tmp_path / "plugins"])
        session.files["/plate.exr"] = np.zeros((20, 28, 4), np.float32)
        session.files["/hint.exr"] = np.zeros(hint_shape + (4,), np.float32)
        session.load(instance_script(gz.GIZMO_CLASS, {}, ["/plate.exr", "/hint.exr"], name="CK"))
        status = session.toNode("CK")["status"].value()
        if warned:
            assert "the Hint input is 10x10 and the plate 28x20, another aspect ratio" in status, status
        else:
            assert status == "", status
