"""The torch despeckle (corridorkey_model/keying/despeckle.py) against OpenCV (tests/support/despeckle_oracle.py).

docs/DESIGN.md §3.4, step 3: threshold > 0.5, keep 8-connected islands of >= min_area
pixels, dilate by OpenCV's 51 x 51 ellipse, Gaussian blur 11 x 11 (sigma 2.0,
reflect-101), multiply. Each helper is checked exactly against its OpenCV call, the
whole against the oracle (the mask in float, as here) within 1e-5 (measured: ~5e-7) on
mattes with islands of many sizes, scripted == eager, deterministic, fp16 in -> fp16 out.
Upstream's 8-bit mask differs from the float one by a bounded, measured amount.
"""

from __future__ import annotations

import cv2
import despeckle_oracle as oracle
import numpy as np
import pytest
import torch

from corridorkey_model.keying import despeckle as dsp

#: Tolerance vs the OpenCV oracle (float32 blur of the same mask; measured ~5e-7: summation order only).
TOL = 1e-5
#: Bound on the difference from upstream's 8-bit mask (0/255 blurred in 8 bits; measured up to 2.6e-3
#: in alpha, 3.8e-3 in the mask on these mattes; docs/pipeline.md).
UPSTREAM_8BIT_TOL = 5e-3


def _run(alpha: np.ndarray, min_area: int, fn=dsp.despeckle) -> np.ndarray:
    return fn(torch.from_numpy(alpha)[None, None], min_area)[0, 0].numpy()


@pytest.fixture(scope="module")
def scripted():
    return torch.jit.script(dsp.despeckle)


# --------------------------------------------------------------------------- the helpers, one OpenCV call each


@pytest.mark.parametrize("radius", list(range(0, 31)) + [40])
def test_ellipse_rows_are_opencvs_structuring_element(radius):
    want = oracle.ellipse(radius)
    got = np.zeros_like(want)
    for i, dx in enumerate(dsp.ellipse_half_widths(radius)):
        got[i, radius - dx:radius + dx + 1] = 1
    np.testing.assert_array_equal(got, want)


def test_ellipse_25_is_not_a_disc_or_a_square():
    """The 51 x 51 element's own shape: corners off, single pixels at the poles, full middle row."""
    widths = dsp.ellipse_half_widths(25)
    assert len(widths) == 51 and widths[25] == 25 and widths[0] == widths[50] == 0
    assert widths[1] == 7  # round(sqrt(625 - 576)) = 7: far wider than a disc's pole row looks


@pytest.mark.parametrize("size", range(1, 32, 2))
def test_gaussian_kernel_is_opencvs(size):
    np.testing.assert_allclose(dsp.gaussian_kernel(size), cv2.getGaussianKernel(size, 0).ravel(), rtol=0, atol=1e-15)


def test_gaussian_kernel_11_has_sigma_2():
    x = np.arange(11) - 5.0
    want = np.exp(-x * x / 8.0)
    np.testing.assert_allclose(dsp.gaussian_kernel(11), want / want.sum(), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="odd"):
        dsp.gaussian_kernel(10)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 3), (5, 5), (6, 13), (37, 8), (64, 91)])
@pytest.mark.parametrize("size", [3, 9, 11])
def test_gaussian_blur_matches_opencv_reflect101_even_on_tiny_frames(shape, size):
    x = np.random.default_rng(sum(shape) + size).random(shape).astype(np.float32)
    got = dsp.gaussian_blur(torch.from_numpy(x), size).numpy()
    np.testing.assert_allclose(got, cv2.GaussianBlur(x, (size, size), 0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 1), (3, 200), (60, 2), (40, 45), (120, 97)])
@pytest.mark.parametrize("radius", [1, 3, 25])
def test_dilate_ellipse_matches_opencv(shape, radius):
    rng = np.random.default_rng(shape[0] * 7 + shape[1] + radius)
    mask = rng.random(shape) < 0.01
    mask[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = True
    mask[0, -1] = True  # a frame corner
    want = cv2.dilate(mask.astype(np.uint8), oracle.ellipse(radius)).astype(bool)
    np.testing.assert_array_equal(dsp.dilate_ellipse(torch.from_numpy(mask), radius).numpy(), want)


@pytest.mark.parametrize("seed", range(12))
def test_component_areas_match_opencv(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(1, 90, 2)
    solid = rng.random((h, w)) < rng.uniform(0.1, 0.75)  # around the percolation threshold: tangled components
    np.testing.assert_array_equal(dsp.component_areas(torch.from_numpy(solid)).numpy(), oracle.component_areas(solid))


@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 2), (3, 3), (2, 7), (5, 2)])
def test_component_areas_on_tiny_frames(shape):
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    for density in (0.0, 0.4, 0.7, 1.0):
        solid = rng.random(shape) < density
        np.testing.assert_array_equal(dsp.component_areas(torch.from_numpy(solid)).numpy(),
                                      oracle.component_areas(solid))


@pytest.mark.parametrize("kind", ["spiral", "serpentine"])
def test_component_areas_of_snakes_longer_than_any_flood_bound(kind):
    """1-px snakes: path length ~ area, far beyond sqrt(area); odd offsets split them across 2 x 2 blocks."""
    path = oracle.snake_path(kind, 45, 45)
    solid = np.zeros((50, 51), bool)
    oracle.paint(solid, path, True, 1, 3)
    areas = dsp.component_areas(torch.from_numpy(solid)).numpy()
    assert areas.max() == len(path) > 900
    np.testing.assert_array_equal(areas, oracle.component_areas(solid))


def test_component_areas_of_a_maze_cut_into_pieces():
    """A maze (corridors that branch and wind), cut by a few walls into islands of many sizes."""
    solid = oracle.maze(40, seed=3)
    solid[::17, :] = False
    solid[:, 5::23] = False
    np.testing.assert_array_equal(dsp.component_areas(torch.from_numpy(solid)).numpy(), oracle.component_areas(solid))
    assert len(np.unique(oracle.component_areas(solid))) > 20


def test_keep_large_components_keeps_exactly_min_area():
    solid = np.zeros((40, 60), bool)
    solid[2:7, 2:8] = True  # 30 px
    solid[20:25, 2:8] = True
    solid[24, 7] = False  # 29 px
    idx = np.arange(30)
    solid[5 + idx, 30 + idx] = True  # a diagonal line of 30 px: 8-connected, 30 separate 4-connected pixels
    for min_area, kept_rect30, kept_rect29, kept_line in [(29, True, True, True), (30, True, False, True),
                                                          (31, False, False, False)]:
        keep = dsp.keep_large_components(torch.from_numpy(solid), min_area).numpy()
        assert keep[4, 4] == kept_rect30 and keep[22, 4] == kept_rect29 and keep[10, 35] == kept_line, min_area
        np.testing.assert_array_equal(keep, oracle.component_areas(solid) >= min_area)


# --------------------------------------------------------------------------- the whole despeckle vs OpenCV


@pytest.mark.parametrize("h, w, min_area, seed", [
    (97, 131, 50, 0), (256, 306, 1, 1), (130, 77, 2, 2), (256, 384, 400, 3), (201, 203, 57, 4), (300, 300, 900, 5),
])
def test_despeckle_matches_opencv(h, w, min_area, seed):
    alpha = oracle.islands_matte(h, w, min_area, seed)
    want = oracle.despeckle(alpha, min_area)
    got = _run(alpha, min_area)
    assert got.dtype == np.float32 and got.shape == alpha.shape
    err = float(np.abs(got - want).max())
    print(f"{h}x{w} min_area {min_area}: max abs err vs OpenCV {err:.2e}")
    assert err <= TOL
    # the case is not trivial: alpha changed, islands are kept and (min_area > 1) islands are dropped
    areas = oracle.component_areas(alpha > 0.5)
    assert (np.abs(want - alpha) > 0.1).any() and (areas >= min_area).any()
    assert min_area == 1 or ((areas > 0) & (areas < min_area)).any()


@pytest.mark.parametrize("offset", [0, 1, 3, 7, 30])
@pytest.mark.parametrize("haze", [0.45, 0.2])
def test_crop_edge_does_not_mirror_the_falloff(offset, haze):
    """A kept block in haze (alpha > 0 all around), its falloff reaching the crop edge, at several
    distances from the frame's edge (0: the crop meets the frame; 30: well inside it).

    With a crop margin of radius + blur // 2 the blur's reflect-101 border at the crop edge
    mirrored the dilated mask's outermost row back into the falloff (8.8e-3 * haze there).
    """
    margin = dsp.DILATE_RADIUS + dsp.BLUR_SIZE // 2
    alpha = np.full((2 * margin + 40 + 2 * offset, 2 * margin + 50 + 2 * offset), haze, np.float32)
    y0, x0 = margin + offset, margin + offset + 3
    alpha[y0:y0 + 40, x0:x0 + 44] = 1.0
    alpha[2, 2] = 0.9  # a speck: removed
    want = oracle.despeckle(alpha, 100)
    got = _run(alpha, 100)
    np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
    assert want[y0 - margin, x0 + 20] > 0  # the falloff reaches the old crop's edge row
    assert want[2, 2] == 0.0


@pytest.mark.parametrize("seed", [0, 3])
def test_difference_from_upstreams_8bit_mask_is_bounded(seed):
    """Upstream blurs a 0/255 8-bit mask; the float mask differs from it by under UPSTREAM_8BIT_TOL."""
    alpha = oracle.islands_matte(256, 384, 400, seed)
    got = _run(alpha, 400)
    upstream = alpha * oracle.despeckle_mask_8bit(alpha, 400)
    err = float(np.abs(got - upstream).max())
    print(f"seed {seed}: max abs difference from upstream's 8-bit mask {err:.2e}")
    assert 0 < err <= UPSTREAM_8BIT_TOL


@pytest.mark.slow
@pytest.mark.parametrize("h, w", [(1080, 1920), (2160, 3840)])
def test_despeckle_matches_opencv_at_plate_sizes(h, w):
    alpha = oracle.islands_matte(h, w, 400, seed=7)
    err = float(np.abs(_run(alpha, 400) - oracle.despeckle(alpha, 400)).max())
    print(f"{h}x{w} min_area 400: max abs err vs OpenCV {err:.2e}")
    assert err <= TOL


@pytest.mark.parametrize("kind", ["spiral", "serpentine"])
def test_snake_of_exactly_min_area_is_kept_one_more_is_removed(kind):
    n = 400
    path = oracle.snake_path(kind, 40, 40)[:n]
    ys, xs = np.array(path).T
    assert np.ptp(ys) < 40 and np.ptp(xs) < 40  # compact: its bounding box is far shorter than the path
    alpha = np.zeros((90, 100), np.float32)
    oracle.paint(alpha, path, 0.9, 25, 30)
    kept = _run(alpha, n)
    np.testing.assert_allclose(kept[ys + 25, xs + 30], 0.9, atol=1e-6)  # inside the dilated mask: untouched
    assert _run(alpha, n + 1).max() == 0.0
    np.testing.assert_allclose(kept, oracle.despeckle(alpha, n), atol=TOL)


def test_despeckle_formula_by_hand():
    """Without the oracle: what survives, where the mask reaches, and the 0.5 threshold."""
    h, w = 160, 220
    alpha = np.full((h, w), 0.4, np.float32)  # haze: below the threshold everywhere
    alpha[60:100, 60:100] = 1.0  # 1600 px block: kept
    alpha[10:29, 180:201] = 0.8  # 19 x 21 = 399 px: removed
    alpha[130:150, 180:200] = 0.5  # exactly 0.5 is not solid
    out = _run(alpha, 400)
    np.testing.assert_allclose(out[80, 80], 1.0, atol=1e-6)
    # haze within the radius (minus the blur's reach) keeps its value; beyond radius + blur it is 0
    np.testing.assert_allclose(out[80, 100 + 25 - 6], 0.4, atol=1e-6)
    assert out[80, 100 + 25 + 6] == 0.0 and out[5, 5] == 0.0
    assert out[10:29, 180:201].max() == 0.0 and out[130:150, 180:200].max() == 0.0
    assert np.all(out <= alpha + 1e-7)  # alpha only ever multiplied by a mask in [0, 1]
    # at the mask's edge the blur is a ramp, 0.5 where the dilated edge is
    edge = out[80, 100 + 25 - 3:100 + 25 + 6] / 0.4
    assert np.all(np.diff(edge) < 0) and 0.3 < edge[3] < 0.7


def test_off_and_nothing_solid():
    alpha = oracle.islands_matte(50, 70, 20, seed=9)
    t = torch.from_numpy(alpha)[None, None]
    assert dsp.despeckle(t, 0) is t and dsp.despeckle(t, -5) is t  # 0 (and below) is off: the input itself
    assert dsp.despeckle(torch.full((1, 1, 30, 40), 0.5), 1).abs().max() == 0  # nothing above the threshold
    assert _run(alpha, 50 * 70 + 1).max() == 0.0  # no island that large


def test_batch_and_shape():
    a = torch.from_numpy(np.stack([oracle.islands_matte(60, 80, 30, seed=s) for s in (10, 11)]))[:, None]
    out = dsp.despeckle(a, 30)
    assert out.shape == a.shape
    for i in range(2):
        assert torch.equal(out[i:i + 1], dsp.despeckle(a[i:i + 1], 30))
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        dsp.despeckle(a[:, 0], 30)


# --------------------------------------------------------------------------- TorchScript, determinism, dtypes


def test_scripted_equals_eager_and_is_deterministic(scripted):
    alpha = oracle.islands_matte(180, 240, 100, seed=12)
    t = torch.from_numpy(alpha)[None, None]
    eager = dsp.despeckle(t, 100)
    for _ in range(2):
        assert torch.equal(scripted(t, 100), eager)
        assert torch.equal(dsp.despeckle(t, 100), eager)
    assert scripted(t, 0) is t or torch.equal(scripted(t, 0), t)
    assert float((eager - t).abs().max()) > 0.1  # it did something


def test_every_tensor_is_made_on_the_inputs_device(scripted):
    """No constant device in the scripted graph, and no factory call that falls back to the default device/dtype.

    Under ``with torch.device("meta")`` a tensor made without ``device=`` would be a meta
    tensor and the first op mixing it with the (CPU) input would fail; with float64 as
    the default dtype, a float tensor made without ``dtype=`` would change the result's dtype.
    """
    assert "Device = prim::Constant" not in str(scripted.graph)
    alpha = torch.from_numpy(oracle.islands_matte(70, 90, 40, seed=14))[None, None]
    want = dsp.despeckle(alpha, 40)
    previous = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        with torch.device("meta"):
            got = dsp.despeckle(alpha, 40)
    finally:
        torch.set_default_dtype(previous)
    assert got.device == alpha.device and got.dtype == torch.float32
    assert torch.equal(got, want)


def test_fp16_in_fp16_out_close_to_fp32(scripted):
    rng = np.random.default_rng(13)
    alpha = rng.choice(np.float32([0.0, 0.25, 0.75, 1.0, 1.5]), size=(150, 170), p=[0.45, 0.2, 0.15, 0.15, 0.05])
    alpha[40:80, 50:110] = 0.75  # a kept island (values exact in fp16: the same pixels are solid)
    t32 = torch.from_numpy(alpha.astype(np.float32))[None, None]
    want = dsp.despeckle(t32, 60)
    for fn in (dsp.despeckle, scripted):
        got = fn(t32.half(), 60)
        assert got.dtype == torch.float16 and got.shape == t32.shape
        err = float((got.float() - want).abs().max())
        assert err <= 1e-3, err  # fp16 rounding of the product (values up to 1.5)
    np.testing.assert_allclose(want[0, 0].numpy(), oracle.despeckle(alpha, 60), atol=TOL)
