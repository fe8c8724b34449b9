"""Colour math against the formulas of docs/DESIGN.md §3, written out independently here."""

import math

import numpy as np
import pytest
import torch

from corridorkey_model.keying import colour


def srgb_encode_scalar(x: float) -> float:
    x = max(x, 0.0)
    return 12.92 * x if x <= 0.0031308 else 1.055 * math.pow(x, 1 / 2.4) - 0.055


def srgb_decode_scalar(x: float) -> float:
    x = max(x, 0.0)
    return x / 12.92 if x <= 0.04045 else math.pow((x + 0.055) / 1.055, 2.4)


SAMPLES = [-0.5, 0.0, 1e-4, 0.0031308, 0.0031309, 0.01, 0.04045, 0.18, 0.5, 1.0, 4.0]


@pytest.mark.parametrize("x", SAMPLES)
def test_linear_to_srgb_matches_formula(x):
    got = colour.linear_to_srgb(torch.tensor([x], dtype=torch.float64)).item()
    assert got == pytest.approx(srgb_encode_scalar(x), abs=1e-12)


@pytest.mark.parametrize("x", SAMPLES)
def test_srgb_to_linear_matches_formula(x):
    got = colour.srgb_to_linear(torch.tensor([x], dtype=torch.float64)).item()
    assert got == pytest.approx(srgb_decode_scalar(x), abs=1e-12)


def test_breakpoints_are_continuous():
    eps = 1e-9
    lo = colour.linear_to_srgb(torch.tensor([0.0031308 - eps, 0.0031308 + eps], dtype=torch.float64))
    assert abs(lo[1] - lo[0]) < 1e-6
    hi = colour.srgb_to_linear(torch.tensor([0.04045 - eps, 0.04045 + eps], dtype=torch.float64))
    assert abs(hi[1] - hi[0]) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip_within_1e6(dtype):
    x = torch.linspace(0, 1, 100_001, dtype=dtype)
    assert (colour.srgb_to_linear(colour.linear_to_srgb(x)) - x).abs().max() < 1e-6
    assert (colour.linear_to_srgb(colour.srgb_to_linear(x)) - x).abs().max() < 1e-6


def test_numpy_twins_equal_torch():
    x = np.random.default_rng(0).uniform(-0.2, 3.0, (7, 11, 3)).astype(np.float32)
    np.testing.assert_array_equal(colour.linear_to_srgb_np(x), colour.linear_to_srgb(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(colour.srgb_to_linear_np(x), colour.srgb_to_linear(torch.from_numpy(x)).numpy())
    assert colour.linear_to_srgb_np(x).dtype == np.float32


def despill_pixel(r, g, b, amount):
    spill = max(g - (r + b) / 2, 0.0)
    d = (r + spill / 2, g - spill, b + spill / 2)
    return tuple(o + (n - o) * amount for o, n in zip((r, g, b), d))


COLOURS = [(0.2, 0.9, 0.1), (0.8, 0.5, 0.4), (0.3, 0.3, 0.3), (0.0, 1.0, 0.0), (1.2, 2.0, -0.1)]


@pytest.mark.parametrize("amount", [0.0, 0.3, 0.5, 1.0])
def test_despill_matches_formula(amount):
    fg = torch.tensor(COLOURS, dtype=torch.float64).T.reshape(1, 3, 1, len(COLOURS))
    out = colour.despill(fg, amount)
    for i, c in enumerate(COLOURS):
        assert out[0, :, 0, i].tolist() == pytest.approx(despill_pixel(*c, amount), abs=1e-12)


def test_despill_preserves_luminance_sum_and_leaves_non_green_alone():
    fg = torch.rand(1, 3, 16, 16, dtype=torch.float64)
    out = colour.despill(fg, 1.0)
    torch.testing.assert_close(out.sum(1), fg.sum(1))
    no_spill = fg[:, 1] <= (fg[:, 0] + fg[:, 2]) / 2
    assert torch.equal(out[:, :, no_spill[0]], fg[:, :, no_spill[0]])
    # only lowering green would be the wrong formula: red and blue must rise where there is spill
    spill = ~no_spill
    assert (out[:, 0][spill] > fg[:, 0][spill]).all()


def blue_despill_pixel(r, g, b, amount):
    """The contract for a blue screen: S = blue, A, B = red, green."""
    spill = max(b - (r + g) / 2, 0.0)
    d = (r + spill / 2, g + spill / 2, b - spill)
    return tuple(o + (n - o) * amount for o, n in zip((r, g, b), d))


@pytest.mark.parametrize("amount", [0.0, 0.5, 1.0])
def test_blue_screen_despill_matches_formula_and_scripts(amount):
    colours = COLOURS + [(0.1, 0.2, 0.9), (0.5, 0.4, 1.5)]
    fg = torch.tensor(colours, dtype=torch.float64).T.reshape(1, 3, 1, len(colours))
    out = colour.despill(fg, amount, 2)
    for i, c in enumerate(colours):
        assert out[0, :, 0, i].tolist() == pytest.approx(blue_despill_pixel(*c, amount), abs=1e-12)
    torch.testing.assert_close(torch.jit.script(colour.despill)(fg, amount, 2), out, rtol=0, atol=0)
    # the green default is the same function with channel 1
    torch.testing.assert_close(colour.despill(fg, amount, 1), colour.despill(fg, amount))


def test_despill_refuses_a_channel_that_is_not_rgb():
    with pytest.raises(ValueError, match="screen_channel"):
        colour.despill(torch.rand(1, 3, 2, 2), 1.0, 3)


def test_despill_amount_is_clamped():
    fg = torch.rand(1, 3, 4, 4)
    torch.testing.assert_close(colour.despill(fg, 5.0), colour.despill(fg, 1.0))
    torch.testing.assert_close(colour.despill(fg, -1.0), fg)


def test_despill_np_hwc_equals_torch():
    fg = np.random.default_rng(1).uniform(0, 1, (5, 6, 3)).astype(np.float32)
    expect = colour.despill(torch.from_numpy(fg).permute(2, 0, 1), 0.7).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(colour.despill_np(fg, 0.7), expect, rtol=0, atol=0)


def test_premultiply():
    rgb = np.full((2, 3, 3), 0.8, np.float32)
    a = np.array([[0.0, 0.5, 1.0], [0.25, 0.75, 1.0]], np.float32)
    np.testing.assert_allclose(colour.premultiply_np(rgb, a)[..., 1], 0.8 * a)
    t = colour.premultiply(torch.from_numpy(rgb).permute(2, 0, 1), torch.from_numpy(a)[None])
    np.testing.assert_allclose(t[2].numpy(), 0.8 * a)


def test_checkerboard_tiles():
    board = colour.checkerboard_np(300, 400)
    assert board.shape == (300, 400, 3)
    assert board[0, 0, 0] == pytest.approx(0.15) and board[127, 127, 2] == pytest.approx(0.15)
    assert board[0, 128, 0] == pytest.approx(0.55) and board[128, 0, 1] == pytest.approx(0.55)
    assert board[128, 128, 0] == pytest.approx(0.15) and board[299, 399, 0] == pytest.approx(0.55)
    assert sorted(np.unique(board).tolist()) == pytest.approx([0.15, 0.55])


def test_composite_over_checkerboard_mixes_in_linear():
    fg = np.full((4, 4, 3), 0.8, np.float32)
    alpha = np.array([0.0, 0.5, 1.0, 0.25], np.float32)[None].repeat(4, 0)
    comp = colour.composite_over_checkerboard_np(fg, alpha)
    bg_lin = srgb_decode_scalar(0.15)
    for j, a in enumerate(alpha[0]):
        lin = srgb_decode_scalar(0.8) * a + bg_lin * (1 - a)
        assert comp[0, j, 0] == pytest.approx(srgb_encode_scalar(lin), abs=1e-6)


@pytest.mark.parametrize("size", [(9, 17), (64, 64), (300, 123), (31, 500)])
def test_resize_matches_torchvision_antialiased_bilinear(size):
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(1, 4, 97, 211) * 3 - 1
    expect = TF.resize(x, list(size), interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    got = colour.resize_bilinear_aa(x, *size)
    torch.testing.assert_close(got, expect, rtol=0, atol=1e-6)


def test_resize_half_runs_in_float_and_keeps_dtype():
    x = torch.rand(1, 3, 40, 30)
    got = colour.resize_bilinear_aa(x.half(), 17, 9)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), colour.resize_bilinear_aa(x, 17, 9), rtol=0, atol=2e-3)


def test_imagenet_normalize():
    rgb = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) + torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(colour.imagenet_normalize(rgb), torch.ones(1, 3, 1, 1))


def test_colour_functions_script():
    """The wrapper compiles these: TorchScript must accept them and compute the same."""
    x = torch.rand(1, 3, 8, 8) * 2 - 0.5
    for fn in (colour.linear_to_srgb, colour.srgb_to_linear):
        torch.testing.assert_close(torch.jit.script(fn)(x), fn(x), rtol=0, atol=0)
    torch.testing.assert_close(torch.jit.script(colour.despill)(x, 0.4), colour.despill(x, 0.4), rtol=0, atol=0)
    torch.testing.assert_close(torch.jit.script(colour.resize_bilinear_aa)(x, 5, 13),
                               colour.resize_bilinear_aa(x, 5, 13), rtol=0, atol=0)
