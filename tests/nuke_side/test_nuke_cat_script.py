"""nuke/corridorkey_create_cat.py run as ``nuke -t`` would run it, against a recording stand-in of ``nuke``.

No Nuke here: tests/support/stand_in_nuke.py records what the script does to
CatFileCreator and simulates "Create .cat file" (writing, raising, or silently
doing nothing).
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
from repo_paths import REPO
from stand_in_nuke import StandInNuke

from corridorkey_export.nuke_contract import BLUE, CHANNELS_IN, CHANNELS_OUT, MODEL_ID, OUTPUT_SCALE
from corridorkey_model.keying.knobs import CAT_KNOBS

SCRIPT = REPO / "nuke" / "corridorkey_create_cat.py"

BUILTIN = ("torchScriptFile", "catFile", "channelsIn", "channelsOut", "modelId", "outputScale")


@pytest.fixture
def pt_file(tmp_path) -> Path:
    """A stand-in .pt: a zip archive header is all the script checks before handing it to Nuke."""
    path = tmp_path / "CorridorKey.pt"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 60)
    return path


def run_script(monkeypatch, args, stand_in=None):
    """Run the script as ``__main__`` with ``args``; return its exit status."""
    if stand_in is None:
        monkeypatch.delitem(sys.modules, "nuke", raising=False)
        monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != REPO])
        monkeypatch.chdir(Path(__file__).parent)  # nuke/ must not be importable as a namespace package
    else:
        monkeypatch.setitem(sys.modules, "nuke", stand_in)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT)] + [str(a) for a in args])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return exc.value.code


def set_values(stand_in):
    return {path.split(".", 1)[1]: value for kind, path, *rest in stand_in.events if kind == "setValue"
            for value in rest}


def test_sets_the_exact_catfilecreator_knobs_and_writes_the_cat(monkeypatch, tmp_path, pt_file, capsys):
    cat = tmp_path / "CorridorKey.cat"
    nuke = StandInNuke("write")
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", cat], nuke) == 0

    assert [e for e in nuke.events if e[0] == "createNode"] == [("createNode", "CatFileCreator")]
    values = set_values(nuke)
    assert values["torchScriptFile"] == pt_file.as_posix()
    assert Path(values["catFile"]).parent == tmp_path and values["catFile"].endswith(".cat")
    assert "\\" not in values["torchScriptFile"] + values["catFile"]
    # The form CatFileCreator stores (RVMNukeCatCreator.py): comma-separated, no spaces.
    assert values["channelsIn"] == "rgba.red,rgba.green,rgba.blue,rgba.alpha" == ",".join(CHANNELS_IN)
    assert values["channelsOut"] == ",".join(CHANNELS_OUT)
    assert values["modelId"] == MODEL_ID == "CorridorKey_v1.0_Nuke"
    assert values["outputScale"] == OUTPUT_SCALE == 1

    # One custom knob per spec knob, with the spec's type, range, default and tooltip.
    added = [(e[2], e[3]) for e in nuke.events if e[0] == "addKnob"]
    # Int and Float knobs as Foundry's .cat guide lists them (appendix "Supported Nuke Knobs"); an
    # enumeration is an Int knob on the .cat (no Foundry source for an Enumeration knob there).
    expected_class = {"float": "Double_Knob", "int": "Int_Knob"}
    assert added == [(k.name, expected_class[k.kind]) for k in CAT_KNOBS]

    # Create .cat file is pressed once, after every knob was set.
    kinds = [e[0] for e in nuke.events]
    assert kinds.count("execute") == 1
    assert kinds.index("execute") > max(i for i, k in enumerate(kinds) if k in ("setValue", "addKnob"))

    # What "NukeX" wrote is the final .cat; the partial file is gone.
    record = json.loads(cat.read_text())
    assert {k: record[k] for k in BUILTIN[2:]} == {
        "channelsIn": ",".join(CHANNELS_IN), "channelsOut": ",".join(CHANNELS_OUT),
        "modelId": MODEL_ID, "outputScale": OUTPUT_SCALE}
    for k in CAT_KNOBS:
        got = record["_custom"][k.name]
        assert got["label"] == k.label and got["tooltip"].startswith(k.tooltip)
        assert got["value"] == k.default
        if k.choices:  # the Int knob's range is the choices' indices, and its tooltip names them
            assert tuple(got["range"]) == (0, len(k.choices) - 1)
            assert got["tooltip"].endswith("(" + ", ".join(f"{i} = {c}" for i, c in enumerate(k.choices)) + ")")
        else:
            assert tuple(got["range"]) == (k.minimum, k.maximum)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CorridorKey.cat", "CorridorKey.pt"]
    assert "wrote" in capsys.readouterr().out


def test_missing_pt_fails_loudly_before_touching_nuke(monkeypatch, tmp_path, capsys):
    nuke = StandInNuke("write")
    missing = tmp_path / "nope" / "CorridorKey.pt"
    code = run_script(monkeypatch, ["--pt", missing, "--cat", tmp_path / "CorridorKey.cat"], nuke)
    assert code == 1
    err = capsys.readouterr().err
    assert "TorchScript file not found" in err and str(missing) in err
    assert nuke.events == []
    assert not (tmp_path / "CorridorKey.cat").exists()


def test_a_checkpoint_that_is_not_torchscript_is_refused(monkeypatch, tmp_path, capsys):
    bogus = tmp_path / "CorridorKey.pt"
    bogus.write_text("not a zip")
    assert run_script(monkeypatch, ["--pt", bogus, "--cat", tmp_path / "x.cat"], StandInNuke()) == 1
    assert "not a TorchScript file" in capsys.readouterr().err


@pytest.mark.parametrize("behaviour,message", [
    ("raise", "CatFileCreator failed: CatFileCreator: the model could not be loaded"),
    ("nothing", "wrote no .cat"),
])
def test_a_failing_catfilecreator_exits_nonzero_and_leaves_no_file(monkeypatch, tmp_path, pt_file, capsys,
                                                                   behaviour, message):
    nuke = StandInNuke(behaviour)
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", tmp_path / "CorridorKey.cat"], nuke) == 1
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CorridorKey.pt"]


def test_blue_screen_builds_the_blue_model_id(monkeypatch, tmp_path, pt_file):
    cat = tmp_path / BLUE.cat_filename
    nuke = StandInNuke("write")
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", cat, "--screen", "blue"], nuke) == 0
    assert set_values(nuke)["modelId"] == BLUE.model_id == "CorridorKeyBlue_1.0_Nuke"
    assert json.loads(cat.read_text())["modelId"] == BLUE.model_id


@pytest.mark.parametrize("stored", [
    "rgba.red, rgba.green, rgba.blue, rgba.alpha",   # spaces after the commas
    " rgba.red ,rgba.green,rgba.blue,rgba.alpha ",
])
def test_channels_read_back_in_another_formatting_are_accepted(monkeypatch, tmp_path, pt_file, stored):
    nuke = StandInNuke("write", mangle={"channelsIn": stored, "channelsOut": stored})
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", tmp_path / "CorridorKey.cat"], nuke) == 0


def test_nuke_paths_use_forward_slashes():
    namespace = runpy.run_path(str(SCRIPT), run_name="not_main")
    assert namespace["nuke_path"]("C:\\Users\\me\\CorridorKey.pt") == "C:/Users/me/CorridorKey.pt"
    assert namespace["channel_names"]("rgba.red , rgba.green,rgba.blue") == ["rgba.red", "rgba.green", "rgba.blue"]


def test_a_knob_that_does_not_read_back_is_an_error(monkeypatch, tmp_path, pt_file, capsys):
    nuke = StandInNuke("write", mangle={"channelsIn": "rgba.red,rgba.green,rgba.blue"})
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", tmp_path / "CorridorKey.cat"], nuke) == 1
    err = capsys.readouterr().err
    assert "channelsIn reads back 'rgba.red,rgba.green,rgba.blue'" in err
    assert [e for e in nuke.events if e[0] == "execute"] == []
    assert not (tmp_path / "CorridorKey.cat").exists()


def test_refuses_to_overwrite_without_force(monkeypatch, tmp_path, pt_file, capsys):
    cat = tmp_path / "CorridorKey.cat"
    cat.write_text("old")
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", cat], StandInNuke()) == 1
    assert "--force" in capsys.readouterr().err and cat.read_text() == "old"
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", cat, "--force"], StandInNuke()) == 0
    assert json.loads(cat.read_text())["modelId"] == MODEL_ID


def test_plain_nuke_without_nukex_is_refused(monkeypatch, tmp_path, pt_file, capsys):
    nuke = StandInNuke("write", nukex=False)
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", tmp_path / "CorridorKey.cat"], nuke) == 1
    assert "--nukex" in capsys.readouterr().err
    assert nuke.events == []


def test_outside_nuke_the_script_says_so(monkeypatch, tmp_path, pt_file, capsys):
    assert run_script(monkeypatch, ["--pt", pt_file, "--cat", tmp_path / "CorridorKey.cat"]) == 1
    assert "runs inside NukeX" in capsys.readouterr().err


def test_missing_arguments_are_a_usage_error(monkeypatch, capsys):
    assert run_script(monkeypatch, ["--cat", "x.cat"], StandInNuke()) == 2
    assert "--pt" in capsys.readouterr().err
