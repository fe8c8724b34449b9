"""The CPU bfloat16 route of the ``.pt`` (issue #29): the network's copy traced under CPU autocast, chosen by
the file's ``cpu_bf16`` attribute, its validation against fp32, and ``corridorkey run --precision bf16``.

S=64 (a forward is ~0.1 s). The bfloat16 checks that need bfloat16 units are skipped, saying so, on a CPU
without them (corridorkey_model.devices.cpu_bf16_support); the routing checks run everywhere.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from corridorkey_export.export import script_wrapper, trace_network, trace_network_bf16
from corridorkey_export.validate import BF16_TOLERANCE, PlateSpec, format_report, validate_torchscript
from corridorkey_model.devices import cpu_bf16_support
from corridorkey_model.keying import frame
from corridorkey_model.pipeline.clips import FrameRef
from corridorkey_model.pipeline.stages import KeySettings, Prepared, infer
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

pytestmark = pytest.mark.slow

S = 64
PLATES = (PlateSpec("wide", 41, 67, seed=1), PlateSpec("extremes", 27, 30, seed=3, extremes=True))
needs_bf16 = pytest.mark.skipif(not cpu_bf16_support().supported, reason=cpu_bf16_support().describe())


@pytest.fixture(scope="module")
def model():
    return make_random_model(S, seed=0)


@pytest.fixture(scope="module")
def files(model):
    traced = trace_network(model, S)
    return {"both": script_wrapper(traced, S, traced_bf16=trace_network_bf16(model, S)),
            "fp32_only": script_wrapper(traced, S)}


def _plate():
    return plate_tensor(green_screen_plate(45, 70, seed=4))


def test_bf16_copy_is_autocast_casts_around_the_same_weights(model, files):
    graph = files["both"].network_bf16.inlined_graph
    bf16_code = 15  # c10::ScalarType::BFloat16, as the tracer records a dtype
    casts = [n for n in graph.findAllNodes("aten::to") if n.inputsAt(1).toIValue() == bf16_code]
    assert len(casts) > 100  # every conv / linear / attention input is cast
    assert int(files["both"].has_cpu_bf16) == 1 and int(files["fp32_only"].has_cpu_bf16) == 0
    fp32_params = {p.data_ptr() for p in files["both"].network.parameters()}
    assert all(p.data_ptr() in fp32_params for p in files["both"].network_bf16.parameters())  # stored once


def test_cpu_bf16_attribute_chooses_the_copy(files):
    ts, plate = files["both"], _plate()
    assert int(ts.cpu_bf16) == 0  # the default is fp32
    fp32 = ts(plate)
    ts.cpu_bf16 = 1
    try:
        bf16 = ts(plate)
    finally:
        ts.cpu_bf16 = 0
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
    err = float((bf16 - fp32).abs().max())
    assert 1e-4 < err <= BF16_TOLERANCE  # it ran in bfloat16, and stayed close
    assert torch.equal(ts(plate), fp32)  # back to fp32, exactly


def test_a_file_without_the_copy_ignores_the_attribute(files):
    ts, plate = files["fp32_only"], _plate()
    fp32 = ts(plate)
    ts.cpu_bf16 = 1
    try:
        assert torch.equal(ts(plate), fp32)
    finally:
        ts.cpu_bf16 = 0


def test_half_input_never_takes_the_bf16_copy(files):
    """``.half()`` (Nuke's Optimize for Speed and Memory) keeps its own route; the copy is for fp32 input."""
    half = copy.deepcopy(files["both"]).half()
    x = frame.preprocess(_plate(), S, 0).half()
    half.cpu_bf16 = 1
    out = half.run_network(x)
    ref = half.network(x)
    assert all(a.dtype == torch.float16 and torch.equal(a, b) for a, b in zip(out, ref))


@needs_bf16
def test_validation_checks_the_bf16_copy_with_its_own_tolerance(files, model):
    report = validate_torchscript(files["both"], model, plates=PLATES, fp16="off", progress=False)
    assert report.passed, report.problems
    assert len(report.bf16_rows) == 1 and report.bf16_skipped is None
    assert 1e-4 < report.max_abs_bf16 <= BF16_TOLERANCE
    assert "CPU bfloat16 copy (cpu_bf16 = 1) against the fp32 reference" in format_report(report)
    assert report.to_dict()["max_abs_bf16"] == report.max_abs_bf16
    strict = validate_torchscript(files["both"], model, plates=PLATES, fp16="off", progress=False,
                                  bf16_tolerance=1e-6)
    assert not strict.passed and any(p.startswith("bf16 forward") for p in strict.problems)
    assert int(files["both"].cpu_bf16) == 0  # restored


def test_validation_says_why_the_bf16_copy_was_not_checked(files, model):
    report = validate_torchscript(files["fp32_only"], model, plates=PLATES, fp16="off", progress=False)
    assert report.passed and report.bf16_rows == () and report.bf16_skipped == "the file has no CPU bfloat16 copy"
    off = validate_torchscript(files["both"], model, plates=PLATES, fp16="off", progress=False, bf16="off")
    assert off.bf16_skipped == "not requested" and off.calls == report.calls  # no bf16 forward


@needs_bf16
def test_pipeline_infer_runs_the_network_in_bf16(model):
    x = frame.preprocess(_plate(), S, 0)
    prepared = Prepared(FrameRef(0, 1, "f", Path("f.png"), None), x, 45, 70)
    s = KeySettings()
    fp32 = infer(model, torch.device("cpu"), prepared, s)
    bf16 = infer(model, torch.device("cpu"), prepared, s, torch.bfloat16)
    assert bf16.alpha.dtype == torch.float32 and bf16.fg.dtype == torch.float32
    err = max(float((bf16.alpha - fp32.alpha).abs().max()), float((bf16.fg - fp32.fg).abs().max()))
    assert 1e-4 < err <= BF16_TOLERANCE
