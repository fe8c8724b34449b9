"""``corridorkey run --precision`` (issue #29): bf16 runs the network in bfloat16 where the CPU has bfloat16
units and records it; elsewhere it runs fp32 and says so once. Random-init weights at S=64."""

from __future__ import annotations

import json
import logging

import pytest
from test_run_checks import QUICK, make_clip, run_cli

from corridorkey_model import devices
from corridorkey_model.pipeline import frame_io, settings_record

pytestmark = pytest.mark.slow  # each run builds a network


@pytest.mark.skipif(not devices.cpu_bf16_support().supported, reason=devices.cpu_bf16_support().describe())
def test_bf16_keys_in_bfloat16_and_records_it(tmp_path):
    fp32 = make_clip(tmp_path / "A", numbers=(1, 2))
    bf16 = make_clip(tmp_path / "B", numbers=(1, 2))
    result, text = run_cli(fp32, *QUICK)
    assert result.exit_code == 0, text
    result, text = run_cli(bf16, *QUICK, "--precision", "bf16", "--frames", "1-1")
    assert result.exit_code == 0, text
    a = frame_io.read_image(fp32 / "Output" / "Matte" / "shot.1.exr")
    b = frame_io.read_image(bf16 / "Output" / "Matte" / "shot.1.exr")
    err = float(abs(a - b).max())
    assert 1e-4 < err <= 0.1  # bfloat16 really ran, and stayed close (half EXR: steps of ~5e-4)
    assert settings_record.read(bf16 / "Output")["precision"] == "bf16"
    assert "precision" not in settings_record.read(fp32 / "Output")  # fp32 records stay as before
    # a resume in fp32 (frame 2 is still to do) would mix two keys: refused without --overwrite
    result, text = run_cli(bf16, *QUICK)
    assert result.exit_code == 1 and "precision" in text, text


def test_bf16_without_bfloat16_units_runs_fp32_with_one_warning(tmp_path, monkeypatch, caplog):
    cascade_lake = "flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
    monkeypatch.setattr(devices, "_CPUINFO", tmp_path / "cpuinfo")
    (tmp_path / "cpuinfo").write_text(cascade_lake)
    clip = make_clip(tmp_path / "C", numbers=(1, 2))
    with caplog.at_level(logging.WARNING):
        result, text = run_cli(clip, *QUICK, "--precision", "bf16")
    assert result.exit_code == 0, text
    notes = [r.getMessage() for r in caplog.records if "runs in fp32 instead" in r.getMessage()]
    assert len(notes) == 1 and "avx512_bf16" in notes[0], notes
    assert "precision" not in json.loads((clip / "Output" / "corridorkey_settings.json").read_text())["settings"]
