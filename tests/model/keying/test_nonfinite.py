"""NaN and inf in the plate or hint count as 0: in the shared frame math, so in the eager reference and the .pt.

CG renders and damaged EXRs carry NaN/inf pixels; without this, the antialiased
resize and the attention spread one bad pixel over the whole frame (every output
pixel NaN). The expected values are computed on a copy of the plate whose bad
values were replaced by 0 here, with NumPy, independently of the code under test.
(The pipeline end to end: tests/model/pipeline/test_pipeline.py.)
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from corridorkey_export.export import export_torchscript
from corridorkey_export.validate import FP16_TOLERANCE
from corridorkey_export.wrapper import set_knobs
from corridorkey_model.keying import frame
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

#: Small S: fp16 convolutions on CPU use a slow reference kernel.
S = 64
H, W = 40, 56


def damaged_plate(seed: int = 0, linear: bool = False) -> np.ndarray:
    """A 40 x 56 plate with a 10 x 10 NaN patch (plate and hint), +inf in green, -inf in the hint."""
    p = green_screen_plate(H, W, seed=seed, linear=linear)
    p[5:15, 8:18, :] = np.nan
    p[30, 40, 1] = np.inf
    p[20, 50, 3] = -np.inf
    return p


def zeroed(p: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(p), p, np.float32(0.0)).astype(np.float32)


def check_keyed(out: torch.Tensor, what: str) -> None:
    assert out.shape == (1, 4, H, W), what
    assert torch.isfinite(out).all(), f"{what}: {int((~torch.isfinite(out)).sum())} non-finite output values"
    alpha = out[:, 3].float()
    assert 0.0 <= float(alpha.min()) and float(alpha.max()) <= 1.0, what


@pytest.fixture(scope="module")
def model():
    return make_random_model(S, seed=0)


@pytest.mark.parametrize("gamma", [frame.GAMMA_SRGB, frame.GAMMA_LINEAR])
def test_preprocess_counts_nan_and_inf_as_zero(gamma):
    p = damaged_plate(linear=gamma == frame.GAMMA_LINEAR)
    assert np.isnan(p).sum() == 10 * 10 * 4 and np.isinf(p).sum() == 2  # the damage is there
    got = frame.preprocess(plate_tensor(p), S, gamma)
    want = frame.preprocess(plate_tensor(zeroed(p)), S, gamma)
    assert torch.isfinite(got).all()
    assert torch.equal(got, want)


def test_preprocess_in_half_precision_counts_overflow_as_zero():
    """A superwhite that is finite in fp32 becomes inf when the input is cast to fp16 (Nuke's fp16 mode)."""
    p = green_screen_plate(H, W, seed=1)
    p[10, 10, 0] = 1.0e5  # > 65504, the largest half
    x = plate_tensor(p).half()
    assert torch.isinf(x).sum() == 1
    got = frame.preprocess(x, S, frame.GAMMA_SRGB)
    assert got.dtype == torch.float16 and torch.isfinite(got).all()
    p[10, 10, 0] = 0.0
    want = frame.preprocess(plate_tensor(p).half(), S, frame.GAMMA_SRGB)
    assert torch.equal(got, want)


def test_eager_reference_output_is_finite_and_equals_the_zeroed_plate(model):
    p = damaged_plate()
    out = frame.key_frame(model, plate_tensor(p), frame.GAMMA_SRGB, 5.0, 1.0)
    check_keyed(out, "eager fp32")
    want = frame.key_frame(model, plate_tensor(zeroed(p)), frame.GAMMA_SRGB, 5.0, 1.0)
    assert torch.equal(out, want)


# --------------------------------------------------------------------------- the exported .pt


@pytest.fixture(scope="module")
def loaded_pt(tmp_path_factory, model):
    out = tmp_path_factory.mktemp("nonfinite") / "CorridorKey.pt"
    export_torchscript(model, out, random_init_seed=0)
    return torch.jit.load(str(out), map_location="cpu").eval()


@pytest.mark.slow
def test_pt_fp32_and_fp16_outputs_are_finite_on_a_damaged_plate(loaded_pt, model):
    p = damaged_plate(seed=2, linear=True)
    set_knobs(loaded_pt, gamma_input=1, despill_strength=5.0, refiner_strength=1.0)
    out32 = loaded_pt(plate_tensor(p))
    check_keyed(out32, ".pt fp32")
    want = frame.key_frame(model, plate_tensor(zeroed(p)), frame.GAMMA_LINEAR, 5.0, 1.0)
    assert float((out32 - want).abs().max()) <= 1e-5  # the .pt and the reference agree on what NaN means

    half = loaded_pt.half()  # what Nuke's "Optimize for Speed and Memory" does (converts in place)
    try:
        out16 = half(plate_tensor(p).half())
        assert out16.dtype == torch.float16
        check_keyed(out16, ".pt fp16")
        assert float((out16.float() - out32).abs().max()) <= FP16_TOLERANCE
    finally:
        loaded_pt.float()
