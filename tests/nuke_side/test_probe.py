"""The probe of a real Nuke (nuke/corridorkey_probe.py) and the model's assumptions it checks.

tests/support/nuke_graph.py lists what its model of Nuke assumes (``ASSUMPTIONS``). The probe
measures each of them in a licensed Nuke and writes a JSON; a TD sends that JSON back and it
is committed under tests/data/nuke_probe/ (docs/nuke.md). Here:

* the probe runs against the model itself: it measures every assumption, and the model agrees
  with its own list (so the probe's Python and the model's API stay in step);
* every committed JSON is compared with the assumptions, naming each one a real Nuke contradicts;
* each assumption no committed JSON confirms yet is named in a warning.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings

from nuke_graph import ASSUMPTIONS, NukeSession
from repo_paths import REPO

from corridorkey_export import gizmo as gz
from corridorkey_export import nuke_files

PROBE = REPO / "nuke" / "corridorkey_probe.py"
PROBE_DATA = REPO / "tests" / "data" / "nuke_probe"


def load_probe():
    spec = importlib.util.spec_from_file_location("corridorkey_probe", PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed_probes():
    return {p.name: json.loads(p.read_text()) for p in sorted(PROBE_DATA.glob("*.json"))}


def test_the_probe_measures_every_assumption_and_the_model_agrees(tmp_path, monkeypatch):
    pt = tmp_path / "CorridorKey.pt"
    pt.write_text("not read: the probe renders no Inference node")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "CorridorKey.cat").write_text(json.dumps({"torchScriptFile": str(pt), "_custom": {}}))
    session = NukeSession({gz.GIZMO_CLASS: (REPO / nuke_files.GIZMO_PATH).read_text()}, [plugins],
                          root_format=(4, 3))
    monkeypatch.setitem(sys.modules, "nuke", session)
    out = tmp_path / "probe.json"
    assert load_probe().main(["corridorkey_probe.py", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["format"] == 1
    assert set(result["facts"]) == set(ASSUMPTIONS)
    disagree = {k: v for k, v in result["facts"].items() if v != ASSUMPTIONS[k]}
    assert not disagree, f"the model contradicts its own assumptions: {disagree}"
    assert result["info"]["model_file"] == str(plugins / "CorridorKey.cat")
    assert result["info"]["colour_spaces"] == ["scene_linear", "color_picking", "color_picking", "scene_linear"]
    # the saved script's expressions, as the model evaluates them (Screen Green, Output "Matte only", sRGB)
    expressions = result["info"]["expressions"]
    assert expressions["Inference.disable"] is False and expressions["InferenceBlue.disable"] is True
    assert expressions["OutputSwitch.which"] == 3.0 and expressions["ToNetwork.disable"] is False
    for data in committed_probes().values():  # and as a real Nuke evaluated them
        real = data.get("info", {}).get("expressions") or {}
        differ = {k: (v, expressions.get(k)) for k, v in real.items() if k in expressions and v != expressions[k]}
        assert not differ, f"a real Nuke evaluates these gizmo expressions otherwise (Nuke, model): {differ}"


def test_the_probe_says_when_the_gizmo_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nuke", NukeSession({}, [], root_format=(4, 3)))
    status = load_probe().main(["corridorkey_probe.py", str(tmp_path / "probe.json")])
    assert status == 1 and not (tmp_path / "probe.json").exists()


def test_committed_probes_confirm_the_models_assumptions():
    """Each committed probe JSON agrees with every assumption it measured; the unconfirmed ones are named."""
    probes = committed_probes()
    for name, data in probes.items():
        assert data.get("format") == 1, f"{name}: not a probe JSON of format 1"
        wrong = {k: (v, ASSUMPTIONS[k]) for k, v in data["facts"].items() if k in ASSUMPTIONS and v != ASSUMPTIONS[k]}
        assert not wrong, (f"{name} ({data.get('info', {}).get('nuke_version')}): a real Nuke contradicts the "
                           f"model's assumptions (measured, assumed): {wrong}; fix tests/support/nuke_graph.py")
    confirmed = {k for data in probes.values() for k, v in data["facts"].items() if v == ASSUMPTIONS.get(k)}
    unconfirmed = sorted(set(ASSUMPTIONS) - confirmed)
    if unconfirmed:
        warnings.warn("assumptions of tests/support/nuke_graph.py no real Nuke has confirmed yet (run "
                      "nuke/corridorkey_probe.py, docs/nuke.md): " + ", ".join(unconfirmed), stacklevel=1)
