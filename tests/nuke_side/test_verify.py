"""The Verify button's Python (gizmos/Cattery/CorridorKey/corridorkey_verify.py) in the executable model of Nuke.

The export writes the test plate and reference values beside the .pt; ``--install-to --cat``
copies them beside the installed .cat (here a stand-in .cat that names the .pt); ``verify(node)``
runs on a CorridorKey node loaded from the shipped gizmo in tests/support/nuke_graph.py: its
temporary Read and Inference nodes are real nodes of the model, the Inference node runs the
exported .pt (fp16 when the node asks for it on a GPU), and ``Node.sample`` reads the result
in Nuke's bottom-up image coordinates.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from nuke_graph import NukeSession, instance_script, write_cat
from repo_paths import REPO

from corridorkey_export import gizmo as gz
from corridorkey_export import nuke_files
from corridorkey_export.export import export_torchscript
from corridorkey_export.exr import read_exr_rgba
from corridorkey_export.nuke_contract import SCREENS
from corridorkey_model.keying.knobs import CAT_KNOBS
from corridorkey_model.pipeline.compare import RUN_MODES
from corridorkey_model.testing import make_random_model

S = 64


def load_verify_module():
    spec = importlib.util.spec_from_file_location("corridorkey_verify", REPO / nuke_files.VERIFY_MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model64():
    return make_random_model(S, seed=5)


@pytest.fixture(scope="module")
def installed(tmp_path_factory, model64):
    """(package folder with the .cat and the Verify files, the exported .pt)."""
    export_dir = tmp_path_factory.mktemp("export")
    pt = export_dir / "CorridorKey.pt"
    export_torchscript(model64, pt, random_init_seed=5)
    cat = write_cat(export_dir / "CorridorKey.cat", pt, [k.name for k in CAT_KNOBS])
    home = tmp_path_factory.mktemp("home")
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--cat", str(cat), "--root", str(REPO)])
    assert result.exit_code == 0, result.output
    return home / "Cattery" / "CorridorKey", pt


def session_with_node(package, screen="Green", gpu_name="Not available", use_gpu=True, half=False, gizmo_file=None):
    """A session whose plugin path is ``package`` and a CorridorKey node (the shipped gizmo) in it;
    ``gizmo_file``: where the node's .gizmo is (``Gizmo.filename()``; default the repository's)."""
    session = NukeSession({gz.GIZMO_CLASS: gizmo_file or REPO / nuke_files.GIZMO_PATH}, [package],
                          gpu=gpu_name != "Not available", gpu_name=gpu_name)
    session.files["/plate.exr"] = np.zeros((8, 8, 4), np.float32)
    knobs = {"screen": screen, "useGPUIfAvailable": "true" if use_gpu else "false",
             "halfPrecision": "true" if half else "false"}
    session.load(instance_script(gz.GIZMO_CLASS, knobs, ["/plate.exr", "/plate.exr"], name="CK"))
    return session, session.toNode("CK")


def run_verify(session, node):
    saved = sys.modules.get("nuke")
    sys.modules["nuke"] = session
    try:
        return load_verify_module().verify(node)
    finally:
        if saved is None:
            sys.modules.pop("nuke", None)
        else:
            sys.modules["nuke"] = saved


def status(node):
    return node.knob("status").value()


def pt_output(pt_path, plate_file):
    ts = torch.jit.load(str(pt_path)).eval()
    x = torch.from_numpy(read_exr_rgba(plate_file)).permute(2, 0, 1)[None]
    with torch.no_grad():
        return ts(x)[0].permute(1, 2, 0).numpy()


def test_export_writes_plate_and_reference_beside_the_pt(installed):
    package, pt = installed
    data = json.loads((pt.parent / SCREENS[0].verify_filename).read_text())
    assert data["model_id"] == SCREENS[0].model_id and data["plate"] == SCREENS[0].verify_plate_filename
    assert {m: t for m, t in data["tolerances"].items()} == {m: v.tolerance for m, v in RUN_MODES.items()}
    plate = read_exr_rgba(pt.parent / data["plate"])
    assert plate.shape == (data["height"], data["width"], 4)
    # The stored values are the .pt's output at the stored pixels, with y counted from the bottom.
    out = pt_output(pt, pt.parent / data["plate"])
    for s in data["samples"]:
        np.testing.assert_array_equal(out[data["height"] - 1 - s["y"], s["x"]], np.float32(s["values"]))
    manifest = json.loads(pt.with_suffix(".manifest.json").read_text())
    assert manifest["verify"]["reference"] == SCREENS[0].verify_filename
    # --install-to copied both beside the installed .cat, byte for byte.
    for name in (SCREENS[0].verify_filename, SCREENS[0].verify_plate_filename):
        assert (package / name).read_bytes() == (pt.parent / name).read_bytes()


def test_verified_on_cpu(installed):
    package, _pt = installed
    session, node = session_with_node(package)
    before = [n.name() for n in session.root().nodes()]
    message = run_verify(session, node)
    assert message == status(node)
    assert message.startswith("Verified: max error 0 (tolerance 5e-05) on CPU fp32"), message
    # The temporary nodes were made at the top level and deleted again.
    deleted = [e[1] for e in session.log if e[0] == "delete"]
    assert len(deleted) == 2 and not set(deleted) & set(before)
    assert [n.name() for n in session.root().nodes()] == before
    assert session._context == [session.root()]


def test_gpu_fp16_settings_reach_the_test_node_and_its_tolerance(installed):
    package, _pt = installed
    session, node = session_with_node(package, gpu_name="NVIDIA RTX A6000", half=True)
    message = run_verify(session, node)
    assert message.startswith("Verified: max error") and "(tolerance 0.01) on GPU fp16" in message, message
    error = float(message.split("max error ")[1].split()[0])
    assert 0 < error <= 0.01  # fp16 differs from the fp32 reference, within tolerance


def test_gpu_off_on_the_node_means_cpu(installed):
    package, _pt = installed
    session, node = session_with_node(package, gpu_name="NVIDIA RTX A6000", use_gpu=False, half=True)
    assert "on CPU fp32" in run_verify(session, node)


def test_cpu_precision_bfloat16_is_named_where_it_applies(installed):
    """The test runs fp32 on the CPU; a node that renders in bfloat16 on this machine (CPU Precision bfloat16 and
    bfloat16 units, which onCreate reads from the CPU flags) says so, and points to the kit that checks it."""
    from corridorkey_model.devices import cpu_flags
    from corridorkey_model.keying.knobs import CPU_BF16_FLAGS

    units = bool(cpu_flags() & set(CPU_BF16_FLAGS))
    package, _pt = installed
    session, node = session_with_node(package)
    node["cpu_precision"].setValue(1)
    message = run_verify(session, node)
    assert message.startswith("Verified: max error 0 (tolerance 5e-05) on CPU fp32"), message
    assert ("renders in bfloat16 here" in message and "parity_bf16.nk" in message) == units, message
    node["cpu_bf16_units"].setValue(0)  # a machine without the units: fp32 is what the node renders
    assert "bfloat16" not in run_verify(session, node)
    node["cpu_bf16_units"].setValue(1)
    node["cpu_precision"].setValue(0)
    assert "bfloat16" not in run_verify(session, node)
    session, node = session_with_node(package, gpu_name="NVIDIA RTX A6000")  # on the GPU: CPU Precision is moot
    node["cpu_precision"].setValue(1)
    node["cpu_bf16_units"].setValue(1)
    assert "bfloat16" not in run_verify(session, node)


def test_a_reference_from_before_the_bf16_mode_still_installs(installed, tmp_path):
    """A Verify reference holds a tolerance per run mode; one written before cpu-bf16 existed stays usable."""
    from corridorkey_export.verify_data import VERIFY_MODES, check_reference

    package, pt = installed
    ref = tmp_path / SCREENS[0].verify_filename
    shutil.copy(pt.parent / SCREENS[0].verify_plate_filename, tmp_path / SCREENS[0].verify_plate_filename)
    data = json.loads((pt.parent / SCREENS[0].verify_filename).read_text())
    data["tolerances"] = {m: t for m, t in data["tolerances"].items() if m in VERIFY_MODES}
    ref.write_text(json.dumps(data))
    assert check_reference(ref, SCREENS[0])[0]["tolerances"] == data["tolerances"]
    del data["tolerances"]["gpu-fp16"]
    ref.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="gpu-fp16"):
        check_reference(ref, SCREENS[0])
    assert set(VERIFY_MODES) == {"cpu", "gpu", "gpu-fp16"} <= set(RUN_MODES)


def test_a_different_result_fails_plainly(installed, tmp_path):
    package, _pt = installed
    moved = tmp_path / "pkg"
    shutil.copytree(package, moved)
    ref = moved / SCREENS[0].verify_filename
    data = json.loads(ref.read_text())
    data["samples"][0]["values"][0] += 1e-3  # the stored value, not what this Nuke computes
    ref.write_text(json.dumps(data))
    session, node = session_with_node(moved)
    message = run_verify(session, node)
    assert message.startswith("Verify FAILED: max error 0.001 (tolerance 5e-05) on CPU fp32 at pixel ("), message
    assert "Traceback" not in message


def test_missing_reference_is_a_plain_message(installed, tmp_path):
    package, _pt = installed
    bare = tmp_path / "pkg"
    bare.mkdir()
    shutil.copy(package / "CorridorKey.cat", bare / "CorridorKey.cat")
    session, node = session_with_node(bare)
    before = len(session.root().nodes())
    message = run_verify(session, node)
    assert message.startswith("Verify could not run: no reference values CorridorKey.verify.json beside")
    assert "--install-to" in message and len(session.root().nodes()) == before


def test_missing_cat_is_a_plain_message(installed, tmp_path):
    session, node = session_with_node(tmp_path)  # nothing on the plugin path
    assert run_verify(session, node) == ("Verify could not run: CorridorKey.cat was not found on the plugin path; "
                                         "build it in NukeX and install it")


def test_a_nuke_error_during_the_render_is_a_plain_message_and_cleans_up(installed, tmp_path):
    package, _pt = installed
    broken = tmp_path / "pkg"
    shutil.copytree(package, broken)
    # The .cat loads (its record is fine) but its model fails when the frame is rendered: the stand-in opens the
    # .pt behind a .cat only at the first render, so an unreadable .pt is an error in the middle of the render.
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not TorchScript")
    record = json.loads((broken / "CorridorKey.cat").read_text())
    record["torchScriptFile"] = str(damaged)
    (broken / "CorridorKey.cat").write_text(json.dumps(record))
    session, node = session_with_node(broken)
    before = [n.name() for n in session.root().nodes()]
    message = run_verify(session, node)
    assert message.startswith("Verify could not run: ") and "damaged.pt" in message, message
    assert "Traceback" not in message and "FAILED" not in message
    assert [n.name() for n in session.root().nodes()] == before and session._context == [session.root()]


def test_blue_screen_uses_the_blue_inference_node_and_files(installed):
    package, _pt = installed
    session, node = session_with_node(package, screen="Blue")
    message = run_verify(session, node)
    assert message.startswith("Verify could not run: CorridorKeyBlue.cat was not found")


def test_screen_table_matches_the_nuke_contract():
    module = load_verify_module()
    assert module.SCREENS == tuple((gz.INFERENCE_NODES[s.name], s.cat_filename, s.verify_filename)
                                   for s in SCREENS)


def test_the_gizmos_verify_button_imports_from_the_gizmos_folder(installed, monkeypatch):
    """The button of the shipped gizmo, a PyScript_Knob (type 22) labelled for what it tests, finds
    corridorkey_verify.py beside the gizmo file (Gizmo.filename()) even though nukescripts/cattery.py adds
    the package folder with addToSysPath=False: the folder is NOT on sys.path here."""
    from nukescript import parse

    package, _pt = installed
    gizmo = parse((REPO / nuke_files.GIZMO_PATH).read_text()).nodes[0]
    button = gizmo.user_knob("verify")
    assert (button.type_id, button.name, button.label) == (22, "verify", "Test Installed Model")
    assert "installed model" in button.tooltip.lower() and "colour settings" in button.tooltip
    folder = str(REPO / nuke_files.PACKAGE_DIR)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != folder])
    monkeypatch.delitem(sys.modules, "corridorkey_verify", raising=False)
    session, node = session_with_node(package)
    node["verify"].execute()  # the button's own Python, with nuke.thisNode() the node
    assert ("filename", "CK") in session.log
    assert status(node).startswith("Verified: max error 0 (tolerance 5e-05) on CPU fp32"), status(node)


def test_the_button_without_its_module_is_a_status_line_not_a_traceback(installed, tmp_path, monkeypatch):
    package, _pt = installed
    lone = tmp_path / "elsewhere" / "CorridorKey.gizmo"  # a gizmo with no corridorkey_verify.py beside it
    lone.parent.mkdir()
    lone.write_text((REPO / nuke_files.GIZMO_PATH).read_text())
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(REPO / nuke_files.PACKAGE_DIR)])
    monkeypatch.delitem(sys.modules, "corridorkey_verify", raising=False)
    session, node = session_with_node(package, gizmo_file=lone)
    node["verify"].execute()  # must not raise
    assert status(node).startswith("Verify could not start: corridorkey_verify.py was not found"), status(node)


def test_a_cat_that_fails_to_load_is_not_judged_as_a_wrong_result(installed, tmp_path):
    """#26 item 3: hasError() after forceValidate() is checked before any sample: a .cat that does not load
    (here its model is gone) is reported as such, never as a wrong result, and nothing is rendered."""
    package, _pt = installed
    broken = tmp_path / "pkg"
    shutil.copytree(package, broken)
    record = json.loads((broken / "CorridorKey.cat").read_text())
    session, node = session_with_node(broken)  # the node's own Inference loads it fine ...
    record["torchScriptFile"] = str(tmp_path / "gone.pt")  # ... then the .cat is replaced by a broken one
    (broken / "CorridorKey.cat").write_text(json.dumps(record))
    before = [n.name() for n in session.root().nodes()]
    cache = len(session.inference_cache)
    message = run_verify(session, node)
    assert message.startswith("Verify could not run: ") and "did not load in this Nuke" in message, message
    assert "FAILED" not in message and len(session.inference_cache) == cache
    assert [n.name() for n in session.root().nodes()] == before


def test_the_plate_is_read_with_its_own_format(installed):
    """#26 item 9: fromUserText reads the file's format and range, so the model never gets a padded frame.
    A Read made by Python has the root format (2048 x 1556 here) until then: a plate padded to it would make
    the network see another image, and Verify would fail."""
    package, _pt = installed
    session, node = session_with_node(package)
    assert run_verify(session, node).startswith("Verified")
    assert [e for e in session.log if e[0] == "fromUserText" and e[1] == "Read1.file"]


def _reference_at(package, img_size):
    path = package / "CorridorKey.verify.json"
    data = json.loads(path.read_text())
    data["img_size"] = img_size
    path.write_text(json.dumps(data))


def test_a_long_cpu_run_asks_first_and_a_no_tests_nothing(installed, tmp_path):
    """#26 item 12: at S >= 1024 on the CPU, in the GUI, the button asks before a run of minutes."""
    package, _pt = installed
    copy = tmp_path / "pkg"
    shutil.copytree(package, copy)
    _reference_at(copy, 2048)
    declined, node = session_with_node(copy)
    declined.GUI, declined.answer = True, False
    before = [n.name() for n in declined.root().nodes()]
    message = run_verify(declined, node)
    assert len(declined.asked) == 1 and "2048" in declined.asked[0] and "CPU" in declined.asked[0]
    assert message == "Verify: cancelled before it started; nothing was tested"
    assert [n.name() for n in declined.root().nodes()] == before and declined.progress == []
    terminal, node = session_with_node(copy)  # GUI False: no dialog in a terminal session
    assert run_verify(terminal, node).startswith("Verified") and terminal.asked == []
    gpu, node = session_with_node(copy, gpu_name="NVIDIA RTX A6000")
    gpu.GUI = True
    run_verify(gpu, node)
    assert gpu.asked == []  # on the GPU: seconds, no question
    small, node = session_with_node(package)
    small.GUI = True
    assert run_verify(small, node).startswith("Verified") and small.asked == []  # S = 64: no question


def test_progress_is_shown_and_cancel_stops_the_test(installed):
    package, _pt = installed
    session, node = session_with_node(package)
    assert run_verify(session, node).startswith("Verified")
    assert session.progress[0][0] == "task" and session.progress[-1] == ("progress", 100)
    assert [p for p in session.progress if p[0] == "message"]
    cancelled, node = session_with_node(package)
    cancelled.cancel_after = 2
    before = [n.name() for n in cancelled.root().nodes()]
    message = run_verify(cancelled, node)
    assert message == "Verify: cancelled after 2 of %d pixels; nothing was tested" % len(
        json.loads((package / "CorridorKey.verify.json").read_text())["samples"])
    assert [n.name() for n in cancelled.root().nodes()] == before


def test_two_exports_in_one_folder_keep_their_own_verify_data(tmp_path, model64):
    """Issue #31 defect 7: exporting y.pt beside x.pt replaced the fixed-name CorridorKey.verify.exr/.json."""
    for name in ("x", "y"):
        export_torchscript(model64, tmp_path / f"{name}.pt", random_init_seed=5)
    for name in ("x", "y"):
        manifest = json.loads((tmp_path / f"{name}.manifest.json").read_text())
        assert manifest["verify"]["reference"] == f"{name}.verify.json"
        assert manifest["verify"]["plate"] == f"{name}.verify.exr"
        data = json.loads((tmp_path / f"{name}.verify.json").read_text())
        assert data["pt_sha256"] == manifest["file_sha256"] and data["plate"] == f"{name}.verify.exr"
    assert not (tmp_path / SCREENS[0].verify_filename).exists()
    # A .cat named after y.pt installs y's Verify data under the names the gizmo looks for.
    cat = tmp_path / "y.cat"
    cat.write_bytes(b"stand-in for the .cat NukeX builds from y.pt")
    home = tmp_path / "home"
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--cat", str(cat), "--root", str(REPO)])
    assert result.exit_code == 0, result.output
    package = home / "Cattery" / "CorridorKey"
    installed = json.loads((package / SCREENS[0].verify_filename).read_text())
    assert installed["pt_sha256"] == json.loads((tmp_path / "y.verify.json").read_text())["pt_sha256"]
    assert installed["plate"] == SCREENS[0].verify_plate_filename
    assert (package / SCREENS[0].verify_plate_filename).read_bytes() == (tmp_path / "y.verify.exr").read_bytes()


@pytest.mark.parametrize("damage", ["truncate", "kind", "screen", "samples", "plate"])
def test_install_refuses_corrupt_verify_data(tmp_path, installed, damage):
    """Issue #31 defect 8: --install-to copied an unparseable CorridorKey.verify.json and exited 0."""
    _package, pt = installed
    folder = tmp_path / "export"
    folder.mkdir()
    for name in (SCREENS[0].verify_filename, SCREENS[0].verify_plate_filename):
        shutil.copy(pt.parent / name, folder / name)
    reference = folder / SCREENS[0].verify_filename
    data = json.loads(reference.read_text())
    if damage == "truncate":
        reference.write_text(reference.read_text()[:200])
    else:
        if damage == "kind":
            data["kind"] = "something-else"
        elif damage == "screen":
            data["screen"] = "blue"
        elif damage == "samples":
            data["samples"][3]["values"] = [0.5]
        else:
            (folder / SCREENS[0].verify_plate_filename).unlink()
        reference.write_text(json.dumps(data))
    cat = folder / "CorridorKey.cat"
    cat.write_bytes(b"stand-in .cat")
    home = tmp_path / "home"
    result = CliRunner().invoke(nuke_files.main, ["--install-to", str(home), "--cat", str(cat), "--root", str(REPO)])
    assert result.exit_code == 1 and str(reference) in result.output and "export" in result.output, result.output
    assert not (home / "Cattery").exists()
