"""The generated Nuke files (gizmo, template comp, cat.json, .cat spec) against the one knob spec.

The .gizmo and .nk are parsed with tests/nukescript.py (Nuke's script syntax and
node stack), not compared as text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from corridorkey_export import nuke_files
from corridorkey_model.knobs import CHANNELS_IN, KNOBS, MODEL_ID, knob_table_markdown
from nukescript import parse, parse_serialise_knob, upstream

REPO = Path(__file__).resolve().parent.parent
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
    return nuke_files.GIZMO_DEFAULT_OVERRIDES.get(spec.name, spec.default)


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


def test_install_into_a_nuke_home(tmp_path):
    cat = tmp_path / "CorridorKey.cat"
    cat.write_bytes(b"cat")
    home = tmp_path / ".nuke"
    (home).mkdir()
    (home / "init.py").write_text("import nuke\nnuke.pluginAddPath('./other')")
    for _ in range(2):  # idempotent
        result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--cat", str(cat),
                                                      "--root", str(REPO)])
        assert result.exit_code == 0, result.output
    target = home / "CorridorKey"
    names = {p.name for p in target.iterdir()}
    assert {"CorridorKey.gizmo", "cat.json", "CorridorKey.cat", "init.py", "menu.py",
            "corridorkey_create_cat.py", "corridorkey_cat_spec.json", "CorridorKey_template.nk"} <= names
    init = (home / "init.py").read_text()
    assert init.startswith("import nuke\nnuke.pluginAddPath('./other')\n")
    assert init.count(f"nuke.pluginAddPath({str(target)!r})") == 1
    assert not (target / "__init__.py").exists()


def test_install_refuses_a_missing_cat(tmp_path):
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(tmp_path), "--cat",
                                                  str(tmp_path / "missing.cat"), "--root", str(REPO)])
    assert result.exit_code == 1 and "missing.cat" in result.output


def test_nuke_folder_is_not_an_importable_package():
    assert not (REPO / "nuke" / "__init__.py").exists()
    assert not list((REPO / "nuke").glob("nuke.py"))


# --------------------------------------------------------------------------- gizmo knobs


def test_every_model_knob_has_a_gizmo_knob_of_the_right_type_range_and_default(gizmo):
    for spec in KNOBS:
        knob = gizmo.user_knob(spec.name)
        assert knob.label == spec.label
        assert knob.tooltip.startswith(spec.tooltip)
        if spec.choices:
            assert knob.type_id == 4 and knob.menu == list(spec.choices)
            default = gizmo.value(spec.name)
            assert default == spec.choices[expected_default(spec)]
        else:
            assert knob.type_id == NUKE_TYPE[spec.kind]
            assert knob.range == (spec.minimum, spec.maximum)
            assert float(gizmo.value(spec.name)) == expected_default(spec)


def test_gamma_input_defaults_to_linear_for_a_default_read_and_says_why(gizmo):
    knob = gizmo.user_knob("gamma_input")
    assert gizmo.value("gamma_input") == "Linear" and knob.menu.index("Linear") == 1
    assert "default Read node" in knob.tooltip and "linear" in knob.tooltip


def test_gizmo_has_gpu_half_precision_output_hint_and_model_file_knobs(gizmo):
    assert gizmo.n_inputs == 2
    assert gizmo.user_knob("useGPUIfAvailable").type_id == 6 and gizmo.value("useGPUIfAvailable") == "true"
    half = gizmo.user_knob("halfPrecision")
    assert half.type_id == 6 and half.label == "Optimize for Speed and Memory"
    assert gizmo.value("halfPrecision", "false") == "false"
    assert gizmo.user_knob("output_mode").menu == list(nuke_files.OUTPUT_MODES)
    assert gizmo.value("output_mode") is None  # first item: comp-ready
    assert gizmo.user_knob("output_mode").menu[0].startswith("Comp-ready")
    assert gizmo.user_knob("hint_channel").menu == ["alpha", "red", "luminance"]
    model_file = gizmo.user_knob("modelFile")
    assert model_file.type_id == 41 and model_file.text == f"{nuke_files.INFERENCE_NODE}.modelFile"


def test_inference_node_is_linked_and_serialises_the_gizmo_defaults(gizmo):
    [inference] = gizmo.by_class("Inference")
    assert inference.name == nuke_files.INFERENCE_NODE
    # The .cat is found on Nuke's plugin path (the folder holding the gizmo).
    assert inference.value("modelFile") == "[lsearch -inline [plugins -all CorridorKey.cat] *.cat]"
    assert inference.expression("useGPUIfAvailable") == "parent.useGPUIfAvailable"
    assert inference.expression("halfPrecision") == "parent.halfPrecision"
    serialised = parse_serialise_knob(inference.value("serialiseKnob"))
    assert list(serialised) == [k.name for k in KNOBS]
    for spec in KNOBS:
        assert inference.expression(spec.name) == f"parent.{spec.name}"
        assert spec.python_type(float(serialised[spec.name])) == expected_default(spec)
    # onCreate re-links every model knob by name.
    for spec in KNOBS:
        assert repr(spec.name) in gizmo.value("onCreate")


# --------------------------------------------------------------------------- gizmo graph


def test_graph_plate_and_hint_into_inference(gizmo):
    plate, hint = gizmo.node("Plate"), gizmo.node("Hint")
    assert plate.cls == hint.cls == "Input"
    assert plate.value("number", "0") == "0" and hint.value("number") == "1"
    [inference] = gizmo.by_class("Inference")
    copy = upstream(inference.inputs[0])
    assert copy.cls == "Copy" and copy.value("from0") == copy.value("to0") == "rgba.alpha"
    assert upstream(copy.inputs[0]) is plate  # B: the plate's RGB
    hint_expr = upstream(copy.inputs[1])  # A: the hint's chosen channel in alpha
    assert hint_expr.cls == "Expression" and upstream(hint_expr.inputs[0]) is hint
    expr = hint_expr.value("expr3")
    assert "parent.hint_channel == 0 ? a" in expr and "parent.hint_channel == 1 ? r" in expr
    assert "0.2126*r + 0.7152*g + 0.0722*b" in expr


def test_graph_outputs_with_srgb_to_linear_before_premultiply(gizmo):
    [inference] = gizmo.by_class("Inference")
    [output] = gizmo.by_class("Output")
    switch = upstream(output.inputs[0])
    assert switch.cls == "Switch" and switch.expression("which") == "parent.output_mode"
    comp, straight, raw, matte = (upstream(i) for i in switch.inputs)
    # 0 comp-ready: Inference -> Colorspace sRGB->linear (rgb) -> Premult
    assert comp.cls == "Premult"
    to_linear = upstream(comp.inputs[0])
    assert to_linear.cls == "Colorspace"
    assert (to_linear.value("colorspace_in"), to_linear.value("colorspace_out", "linear")) == ("sRGB", "linear")
    assert to_linear.value("channels", "rgb") == "rgb"
    assert upstream(to_linear.inputs[0]) is inference
    # 1 straight linear: the same conversion, no premultiply
    assert straight is to_linear
    # 2 raw model output, 3 matte only (alpha into every channel)
    assert raw is inference
    assert matte.cls == "Shuffle" and upstream(matte.inputs[0]) is inference
    assert [matte.value(c) for c in ("red", "green", "blue", "alpha")] == ["alpha"] * 4


# --------------------------------------------------------------------------- template, cat.json, .cat spec


def test_template_wires_reads_through_corridorkey_over_a_background_to_write(template):
    [ck] = template.by_class(nuke_files.GIZMO_CLASS)
    plate, hint = ck.inputs
    assert plate.cls == hint.cls == "Read" and "plate" in plate.value("file") and "hint" in hint.value("file")
    assert hint.value("raw") == "true" and plate.value("raw", "false") == "false"
    for spec in KNOBS:
        value = ck.value(spec.name)
        assert (spec.choices.index(value) if spec.choices else float(value)) == expected_default(spec)
    [merge] = template.by_class("Merge2")
    background, a_input = merge.inputs  # Merge2: input 0 = B, input 1 = A
    assert a_input is ck and background.cls == "Read" and merge.value("operation", "over") == "over"
    [write] = template.by_class("Write")
    assert write.inputs == [merge]
    [note] = template.by_class("StickyNote")
    assert "raw data" in note.value("label") and "CorridorKey.cat" in note.value("label")


def test_cat_json_describes_the_package():
    data = json.loads((REPO / nuke_files.CAT_JSON_PATH).read_text())
    [entry] = data["cats"]
    folder = (REPO / nuke_files.CAT_JSON_PATH).parent
    assert (folder / entry["filepath"]).is_file() and entry["name"] == nuke_files.GIZMO_CLASS
    assert (folder / entry["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["minimum_nuke_version_required"] >= 15.1


def test_cat_spec_is_the_knob_spec():
    data = json.loads((REPO / nuke_files.CAT_SPEC_PATH).read_text())
    assert data["modelId"] == MODEL_ID and data["channelsIn"].split(", ") == list(CHANNELS_IN)
    assert data["knobs"] == [json.loads(json.dumps(k.to_dict())) for k in KNOBS]


def test_readme_section_holds_the_knob_table_verbatim():
    text = (REPO / "README.md").read_text()
    assert knob_table_markdown() in text
    for needle in ("corridorkey_create_cat.py", "--install-to", "NUKE_PATH", "CorridorKey.cat"):
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
    [inference] = gizmo.by_class("Inference")
    serialised = parse_serialise_knob(inference.value("serialiseKnob"))
    assert set(serialised) == {k.name for k in KNOBS}
    for spec in KNOBS:
        value = getattr(scripted, spec.name)
        assert type(value) is spec.python_type and value == spec.default
        knob = gizmo.user_knob(spec.name)
        lo, hi = knob.range if knob.range else (0, len(knob.menu) - 1)
        for v in (lo, hi):  # every value the gizmo offers is accepted by the scripted attribute
            setattr(scripted, spec.name, spec.python_type(v))
            assert getattr(scripted, spec.name) == v
