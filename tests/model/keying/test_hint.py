"""The automatic hint (corridorkey_model/keying/hint.py, docs/DESIGN.md §3.2a), against formulas and OpenCV."""

import cv2
import numpy as np
import pytest
import torch

from corridorkey_model.keying import frame
from corridorkey_model.keying.hint import (
    PARAMS,
    box_blur,
    dilate,
    erode,
    estimate_screen,
    masked_median,
    radius_px,
    rough_hint,
    screen_difference,
    screen_likeness,
)

GREEN = (0.25, 0.70, 0.30)  # an sRGB green screen
BLUE = (0.22, 0.35, 0.78)


def plate(size=128, screen=GREEN, subject=(0.5, 0.45, 0.4), radius=0.3, gain=None, seed=0, noise=0.005):
    """``[1, 3, S, S]`` sRGB: a hard-edged disc of ``subject`` on ``screen``; ``gain`` an H x W light map."""
    ys, xs = np.mgrid[0:size, 0:size] / size
    inside = ((ys - 0.5) ** 2 + (xs - 0.5) ** 2) < radius ** 2
    rgb = np.where(inside[..., None], np.asarray(subject), np.asarray(screen)[None, None] * (
        1.0 if gain is None else gain[..., None]))
    rgb = rgb + np.random.default_rng(seed).normal(0, noise, rgb.shape)
    return torch.from_numpy(rgb.astype(np.float32)).permute(2, 0, 1)[None].contiguous(), inside


def test_screen_difference_is_the_screen_channel_minus_the_larger_other():
    rgb = torch.rand(2, 3, 5, 7)
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    assert torch.equal(screen_difference(rgb, 1), g - torch.maximum(r, b))
    assert torch.equal(screen_difference(rgb, 2), b - torch.maximum(r, g))


def test_masked_median_is_numpys_lower_median_of_the_selection():
    rng = np.random.default_rng(1)
    for n in (1, 2, 7, 100):
        values = rng.normal(size=200).astype(np.float32)
        mask = np.zeros(200, bool)
        mask[rng.choice(200, n, replace=False)] = True
        picked = np.sort(values[mask])
        assert float(masked_median(torch.from_numpy(values), torch.from_numpy(mask))) == picked[(n - 1) // 2]


def test_radii_are_fractions_of_s_at_least_one_pixel():
    assert radius_px(PARAMS.erode_radius, 2048) == round(0.01 * 2048) == 20
    assert radius_px(PARAMS.close_radius, 2048) == 10
    assert radius_px(PARAMS.erode_radius, 64) == 1  # 0.64 rounds to 1
    assert radius_px(0.001, 64) == 1  # never 0


@pytest.mark.parametrize("screen,channel", [(GREEN, 1), (BLUE, 2)])
def test_screen_estimate_is_the_screen_colour(screen, channel):
    x, _inside = plate(screen=screen, noise=0.0)
    k_c, k_l, found, k_a, k_b = estimate_screen(x[0], channel)
    others = [c for i, c in enumerate(screen) if i != channel]
    assert float(k_l) == pytest.approx(screen[channel], abs=1e-6)
    assert (float(k_a), float(k_b)) == pytest.approx((others[0] / screen[channel], others[1] / screen[channel]), abs=1e-6)
    assert float(k_c) == pytest.approx((screen[channel] - max(others)) / screen[channel], abs=1e-6)
    assert float(found) == 1.0


def test_a_frame_without_screen_is_all_subject():
    x = torch.full((1, 3, 64, 64), 0.4)
    x[:, 1] = 0.42  # greyish, barely greener: q98(d) = 0.02 < 0.04
    assert float(estimate_screen(x[0], 1)[2]) == 0.0
    assert torch.equal(rough_hint(x, 1), torch.ones(1, 1, 64, 64))
    red = torch.zeros(1, 3, 64, 64)
    red[:, 0] = 0.8  # no pixel is greenest: no screen candidate at all
    assert torch.equal(rough_hint(red, 1), torch.ones(1, 1, 64, 64))
    assert torch.equal(rough_hint(torch.zeros(1, 3, 64, 64), 1), torch.ones(1, 1, 64, 64))  # black


def test_screen_likeness_formula():
    x, _ = plate(noise=0.0)
    x[0, :, 0, 0] = torch.tensor([0.10, 0.22, 0.11])  # dark green cloth: chroma ratio near the screen's, dark
    x[0, :, 0, 1] = torch.tensor([0.60, 0.70, 0.55])  # a pale greenish mix
    s = screen_likeness(x, 1)
    k_c = (0.70 - 0.30) / 0.70
    k_a, k_b = 0.25 / 0.70, 0.30 / 0.70  # the screen's R / G and B / G

    def ramp(x, lo, hi):
        return min(max((x - lo) / (hi - lo), 0.0), 1.0)

    for (r, g, b), got in (((0.10, 0.22, 0.11), s[0, 0, 0, 0]), ((0.60, 0.70, 0.55), s[0, 0, 0, 1]),
                            (GREEN, s[0, 0, 5, 5])):
        u = (g - max(r, b)) / g / k_c
        v = g / 0.70
        hue = ((r / g - k_a) ** 2 + (b / g - k_b) ** 2) ** 0.5
        near = 1.0 - ramp(hue, PARAMS.hue_near, PARAMS.hue_far)
        dark = 1.0 - ramp(v, PARAMS.hue_dark_high, PARAMS.hue_dark_low)
        expected = (ramp(u, PARAMS.chroma_low, PARAMS.chroma_high) * (1.0 - (1.0 - near) * dark)
                    * ramp(v, PARAMS.level_low, PARAMS.level_high))
        assert float(got) == pytest.approx(expected, abs=1e-5)
    assert float(s[0, 0, 5, 5]) == 1.0 and float(s[0, 0, 0, 0]) < PARAMS.solid_threshold


def test_erode_and_dilate_are_opencvs_with_a_square_and_no_border_effect():
    rng = np.random.default_rng(2)
    mask = (rng.random((40, 50)) > 0.3).astype(np.float32)
    t = torch.from_numpy(mask)[None, None]
    kernel = np.ones((7, 7), np.uint8)
    # OpenCV's default border for erode/dilate is the neutral value: the frame edge changes nothing.
    assert np.array_equal(erode(t, 3)[0, 0].numpy(), cv2.erode(mask, kernel))
    assert np.array_equal(dilate(t, 3)[0, 0].numpy(), cv2.dilate(mask, kernel))


def test_box_blur_is_the_mean_over_the_square_inside_the_frame():
    rng = np.random.default_rng(3)
    img = rng.random((20, 30)).astype(np.float32)
    out = box_blur(torch.from_numpy(img)[None, None], 2)[0, 0].numpy()
    for y, x in ((0, 0), (10, 15), (19, 29), (1, 28)):
        window = img[max(y - 2, 0):y + 3, max(x - 2, 0):x + 3]
        assert out[y, x] == pytest.approx(window.mean(), abs=1e-6)


@pytest.mark.parametrize("screen,channel,size", [(GREEN, 1, 128), (BLUE, 2, 128), (GREEN, 1, 1024)])
def test_hint_is_inside_the_subject_and_zero_on_the_screen(screen, channel, size):
    # 1024: above the work size (512), the hint is made at 512 and resized back: the same shape
    x, inside = plate(size=size, screen=screen)
    hint = rough_hint(x, channel)[0, 0].numpy()
    assert hint.shape == (size, size)
    solid = hint > 0.5
    assert not (solid & ~inside).any()  # nothing solid on the screen
    margin = 2 * max(2, int(0.01 * size)) + 1
    assert hint[~cv2.dilate(inside.astype(np.uint8), np.ones((margin, margin), np.uint8)).astype(bool)].max() == 0.0
    # inside: everything deeper than erosion + blur (2 % of S) and a few pixels is solid
    k = 2 * (int(0.02 * size) + 3) + 1
    deep = cv2.erode(inside.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    assert solid[deep].all()
    # and the erosion pulled the solid area inside the edge: the disc's rim is not solid
    rim = inside & ~cv2.erode(inside.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not solid[rim].any()


def test_gradient_shadow_and_exposure_keep_the_screen_empty():
    size = 128
    ys, xs = np.mgrid[0:size, 0:size] / size
    gain = 0.7 + 0.6 * xs  # +-30 % left to right
    gain = np.where((xs > 0.75) & (ys > 0.5), gain * 0.45 ** (1 / 2.4), gain)  # a 45 % (linear) shadow
    gain = np.where((xs > 0.6) & (ys < 0.15), gain * 0.25 ** (1 / 2.4), gain)  # and a 25 % one, on the lit side
    for exposure in (0.35, 1.0, 1.4):  # under- and over-exposed screens (clipped at 1 by the hint)
        x, inside = plate(size=size, gain=gain * exposure)
        hint = rough_hint(x, 1)[0, 0].numpy()
        assert not ((hint > 0.5) & ~inside).any(), exposure
        deep = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert (hint[deep] > 0.5).all(), exposure


@pytest.mark.parametrize("cloth", [(0.19, 0.25, 0.11), (0.13, 0.22, 0.13), (0.35, 0.45, 0.30), (0.19, 0.38, 0.19)])
def test_dark_or_desaturated_greenish_subject_has_no_hole(cloth):
    x, inside = plate(size=128, subject=cloth)
    hint = rough_hint(x, 1)[0, 0].numpy()
    deep = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert (hint[deep] > 0.5).all()


def test_subject_touching_the_frame_edge_stays_solid_there():
    size = 96
    x, _ = plate(size=size)
    x[:, :, :, :20] = torch.tensor([0.5, 0.45, 0.4]).view(1, 3, 1, 1)  # a band along the left edge
    hint = rough_hint(x, 1)[0, 0]
    assert bool((hint[10:-10, 0:12] > 0.99).all())


def test_empty_screen_has_no_solid_pixel():
    size = 128
    ys, xs = np.mgrid[0:size, 0:size] / size
    x, _ = plate(size=size, radius=0.0, gain=0.7 + 0.6 * ys)
    assert float(rough_hint(x, 1).max()) == 0.0


def test_scripted_equals_eager_and_half_is_sane():
    x, _ = plate(size=96)
    eager = rough_hint(x, 1)
    scripted = torch.jit.script(rough_hint)
    assert torch.equal(scripted(x, 1), eager)
    half = rough_hint(x.half(), 1)
    assert half.dtype == torch.float16 and half.shape == eager.shape
    # fp16 rounds the plate; a pixel may cross a threshold, but the matte is the same almost everywhere
    assert float((half.float() - eager).abs().mean()) < 1e-3


def test_batch_items_are_independent():
    a, _ = plate(size=64, seed=1)
    b, _ = plate(size=64, screen=(0.2, 0.8, 0.2), seed=2)
    both = rough_hint(torch.cat([a, b]), 1)
    assert torch.equal(both[0:1], rough_hint(a, 1)) and torch.equal(both[1:2], rough_hint(b, 1))


def test_preprocess_auto_hint_ignores_the_hint_channel_and_off_leaves_it():
    x, _ = plate(size=80)
    rgba = torch.cat([x, torch.rand(1, 1, 80, 80)], dim=1)
    other = torch.cat([x, torch.zeros(1, 1, 80, 80)], dim=1)
    on = frame.preprocess(rgba, 64, 0, 1, 1)
    assert torch.equal(on, frame.preprocess(other, 64, 0, 1, 1))
    assert torch.equal(on[:, 0:3], frame.preprocess(rgba, 64, 0, 0, 1)[:, 0:3])  # RGB untouched
    from corridorkey_model.keying.colour import resize_bilinear_aa
    assert torch.equal(on[:, 3:4], rough_hint(resize_bilinear_aa(rgba, 64, 64)[:, 0:3], 1))
    assert torch.equal(frame.preprocess(rgba, 64, 0, 0, 1)[:, 3:4], resize_bilinear_aa(rgba, 64, 64)[:, 3:4])


def test_preprocess_makes_the_hint_from_the_srgb_encoded_plate_when_linear():
    x, _ = plate(size=80)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x.clamp(min=0) + 0.055) / 1.055) ** 2.4)  # sRGB decode
    rgba = torch.cat([linear, torch.zeros(1, 1, 80, 80)], dim=1)
    srgb = torch.cat([x, torch.zeros(1, 1, 80, 80)], dim=1)
    h_lin = frame.preprocess(rgba, 64, 1, 1, 1)[:, 3]
    h_srgb = frame.preprocess(srgb, 64, 0, 1, 1)[:, 3]
    # the linear plate is resized before its encode, so the two differ only by resize rounding at edges
    assert float((h_lin - h_srgb).abs().mean()) < 0.01


# --------------------------------------------------------------------------- issue 30: camera-like plates, garbage matte


def test_preprocess_garbage_matte_multiplies_the_automatic_hint_by_the_clamped_hint_channel():
    from corridorkey_model.keying.colour import resize_bilinear_aa

    x, _ = plate(size=80)
    matte = torch.zeros(1, 1, 80, 80)
    matte[..., :, :40] = 1.0  # the left half may hold the subject
    matte[..., :10, :] = 3.0  # out-of-range values are clamped: 1
    matte[..., 70:, :] = -2.0  # ... and 0
    rgba = torch.cat([x, matte], dim=1)
    got = frame.preprocess(rgba, 64, 0, 2, 1)
    hint = got[:, 3:4]
    auto = rough_hint(resize_bilinear_aa(rgba, 64, 64)[:, 0:3], 1)
    assert torch.equal(hint, auto * torch.clamp(resize_bilinear_aa(rgba, 64, 64)[:, 3:4], 0.0, 1.0))
    assert torch.equal(got[:, 0:3], frame.preprocess(rgba, 64, 0, 1, 1)[:, 0:3])  # RGB untouched
    assert float(auto[..., 20:40, 36:].max()) == 1.0 and float(hint[..., 20:40, 36:].max()) == 0.0  # cut off
    assert torch.equal(hint[..., 10:54, :28], auto[..., 10:54, :28])  # kept where the matte is 1
    assert float(hint[..., 60:, :].max()) == 0.0  # -2 clamped to 0
    # a matte of 1 everywhere is the automatic hint itself
    ones = torch.cat([x, torch.ones(1, 1, 80, 80)], dim=1)
    assert torch.equal(frame.preprocess(ones, 64, 0, 2, 1), frame.preprocess(ones, 64, 0, 1, 1))


def test_scripted_preprocess_with_a_garbage_matte_equals_eager():
    x, _ = plate(size=72)
    rgba = torch.cat([x, torch.rand(1, 1, 72, 72)], dim=1)
    scripted = torch.jit.script(frame.preprocess)
    for auto_hint in (0, 1, 2):
        assert torch.equal(scripted(rgba, 64, 0, auto_hint, 1), frame.preprocess(rgba, 64, 0, auto_hint, 1))


def test_tracking_markers_are_not_solid():
    # dark dots 1.5 % of S across and tape crosses 2 % of S wide (arms 0.4 % thick) on the screen
    size = 512
    x, inside = plate(size=size, radius=0.2)
    rgb = x[0].permute(1, 2, 0).numpy().copy()
    markers = np.zeros((size, size), np.uint8)
    for cy, cx in ((40, 40), (40, 470), (470, 60), (450, 450), (256, 40)):
        cv2.circle(markers, (cx, cy), 4, 1, -1)
    for cy, cx in ((100, 256), (420, 256), (256, 470), (60, 180)):
        cv2.line(markers, (cx - 5, cy), (cx + 5, cy), 1, 2)
        cv2.line(markers, (cx, cy - 5), (cx, cy + 5), 1, 2)
    for colour, where in (((0.05, 0.06, 0.05), markers == 1),):
        rgb[where] = colour
    rgb[(markers == 1) & (np.indices((size, size))[1] > 256)] = (0.6, 0.6, 0.6)  # light grey tape on the right
    hint = rough_hint(torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous(), 1)[0, 0].numpy()
    assert hint[markers == 1].max() < 0.5
    assert not ((hint > 0.5) & ~inside).any()


def _subsample_chroma(x: torch.Tensor) -> torch.Tensor:
    """4:2:0 in BT.709 Y'CbCr, 8-bit: the chroma averaged over 2 x 2 blocks and repeated, as a decoder shows it."""
    rgb = np.round(x[0].permute(1, 2, 0).numpy().clip(0, 1) * 255.0) / 255.0
    m = np.array([[0.2126, 0.7152, 0.0722], [-0.1146, -0.3854, 0.5], [0.5, -0.4542, -0.0458]])
    ycc = rgb @ m.T
    h, w = ycc.shape[:2]
    for c in (1, 2):
        block = ycc[..., c].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        ycc[..., c] = np.repeat(np.repeat(block, 2, axis=0), 2, axis=1)
    out = np.clip(np.round((ycc @ np.linalg.inv(m).T) * 255.0) / 255.0, 0, 1)
    return torch.from_numpy(out.astype(np.float32)).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("screen,channel", [(GREEN, 1), (BLUE, 2)])
def test_chroma_subsampled_plate_keeps_the_hint(screen, channel):
    # half-resolution chroma smears colour across the subject's edge: the smear must not become solid
    size = 256
    x, inside = plate(size=size, screen=screen, noise=0.01)
    hint = rough_hint(_subsample_chroma(x), channel)[0, 0].numpy()
    assert not ((hint > 0.5) & ~inside).any()
    deep = cv2.erode(inside.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    assert (hint[deep] > 0.5).all()


@pytest.mark.parametrize("subject,clear,solid", [((0.35, 0.33, 0.30), 0.6, 0.75), ((0.60, 0.38, 0.28), 0.37, 0.6)])
def test_half_transparent_smear_is_not_solid(subject, clear, solid):
    # a grey or a warm (skin) subject mixed with the screen in linear light, as a fast motion blur leaves it:
    # the threshold (s < 0.3; it was 0.5) keeps a 60 % grey and a 37 % skin smear out of the hint (0.5 did not)
    from corridorkey_model.keying.colour import linear_to_srgb, srgb_to_linear

    screen_lin = srgb_to_linear(torch.tensor(GREEN))
    x, _ = plate(size=128, radius=0.0, noise=0.0)
    for share, expected in ((clear, False), (solid, True)):
        y = x.clone()
        mix = torch.tensor(subject) * share + screen_lin * (1 - share)
        y[0, :, 32:96, 32:96] = linear_to_srgb(mix).view(3, 1, 1)
        assert bool(rough_hint(y, 1)[0, 0, 64, 64] > 0.5) == expected, share
