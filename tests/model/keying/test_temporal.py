"""The temporal smoothing formula (keying/temporal.py) against the formula written out again here in NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from corridorkey_model.keying import temporal

H, W = 11, 13


def formula(out, plate, prev_out, prev_plate, next_out, next_plate, s, radius=2, low=0.02, high=0.04):
    """docs/DESIGN.md 3.7, written out independently: loops over the box, edge pixels repeated, float64."""
    def weight(q):
        a = np.nan_to_num(q.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        b = np.nan_to_num(plate.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        d = np.abs(a - b).mean(axis=2)
        h, w = d.shape
        m = np.zeros_like(d)
        for y in range(h):
            for x in range(w):
                total = 0.0
                for dy in range(-radius, radius + 1):
                    for dx in range(-radius, radius + 1):
                        total += d[min(max(y + dy, 0), h - 1), min(max(x + dx, 0), w - 1)]
                m[y, x] = min(max(total / (2 * radius + 1) ** 2, 0.0), 1.0)
        return s * np.clip((high - m) / (high - low), 0.0, 1.0)

    prev_out, prev_plate = (out, plate) if prev_out is None else (prev_out, prev_plate)
    next_out, next_plate = (out, plate) if next_out is None else (next_out, next_plate)
    wp, wn = weight(prev_plate)[..., None], weight(next_plate)[..., None]
    res = (out + wp * prev_out + wn * next_out) / (1.0 + wp + wn)
    res[..., 3] = np.clip(res[..., 3], 0.0, 1.0)
    return res


def frames(seed=0, n=3, plate_noise=0.005):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.9, (H, W, 3)).astype(np.float32)
    plates = [(base + rng.normal(0, plate_noise, base.shape)).astype(np.float32) for _ in range(n)]
    outs = [rng.uniform(0, 1, (H, W, 4)).astype(np.float32) for _ in range(n)]
    return outs, plates


def test_constants_are_the_documented_ones():
    assert (temporal.RADIUS, temporal.LOW, temporal.HIGH) == (2, 0.02, 0.04)
    assert (temporal.STRENGTH_MIN, temporal.STRENGTH_MAX, temporal.STRENGTH_DEFAULT) == (0.0, 1.0, 0.0)


@pytest.mark.parametrize("s", [0.3, 1.0])
def test_matches_the_formula_with_a_moving_patch(s):
    outs, plates = frames()
    plates[0][2:6, 3:9] += 0.3  # moved in the previous frame: weight 0 there, ramps at the patch's border
    plates[2][7:, 9:] -= 0.025  # a faint change in the next: inside the ramp between LOW and HIGH
    got = temporal.smooth_np(outs[1], plates[1], outs[0], plates[0], outs[2], plates[2], s)
    want = formula(outs[1], plates[1], outs[0], plates[0], outs[2], plates[2], s)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
    assert got.dtype == np.float32 and got.shape == (H, W, 4)


def test_a_still_plate_averages_and_a_moved_one_keeps_the_frame_exactly():
    outs, plates = frames(plate_noise=0.0)
    got = temporal.smooth_np(outs[1], plates[1], outs[0], plates[1], outs[2], plates[1], 1.0)
    np.testing.assert_allclose(got, (outs[0] + outs[1] + outs[2]) / 3, atol=2e-7)
    moved = [p + 0.5 for p in plates]
    got = temporal.smooth_np(outs[1], plates[1], outs[0], moved[0], outs[2], moved[2], 1.0)
    assert np.array_equal(got, outs[1])  # weight 0: (O + 0 + 0) / 1, bit for bit


def test_strength_zero_is_the_frame_bit_for_bit():
    outs, plates = frames()
    got = temporal.smooth_np(outs[1], plates[1], outs[0], plates[0], outs[2], plates[2], 0.0)
    assert np.array_equal(got, outs[1])


def test_a_missing_neighbour_is_the_frame_itself():
    outs, plates = frames()
    got = temporal.smooth_np(outs[0], plates[0], None, None, outs[1], plates[1], 0.7)
    same = temporal.smooth_np(outs[0], plates[0], outs[0], plates[0], outs[1], plates[1], 0.7)
    assert np.array_equal(got, same)
    np.testing.assert_allclose(got, formula(outs[0], plates[0], None, None, outs[1], plates[1], 0.7), atol=2e-6)


def test_the_frame_edge_repeats_its_pixels():
    # one changed corner pixel: a 5 x 5 box at the corner covers it 3 x 3 = 9 times (edge repeated)
    plate = np.zeros((H, W, 3), np.float32)
    other = plate.copy()
    other[0, 0] = 0.5
    import torch

    m = temporal.box_mean(temporal.plate_difference(torch.from_numpy(other).permute(2, 0, 1)[None],
                                                    torch.from_numpy(plate).permute(2, 0, 1)[None]))[0, 0].numpy()
    assert m[0, 0] == pytest.approx(9 * 0.5 / 25, abs=1e-7)
    assert m[2, 2] == pytest.approx(0.5 / 25, abs=1e-7) and m[3, 3] == 0.0


def test_non_finite_plate_values_count_as_zero_and_the_output_stays_finite():
    outs, plates = frames()
    bad = plates[0].copy()
    bad[1, 1] = [np.nan, np.inf, -np.inf]
    zeroed = bad.copy()
    zeroed[1, 1] = 0.0
    got = temporal.smooth_np(outs[1], plates[1], outs[0], bad, outs[2], plates[2], 1.0)
    assert np.isfinite(got).all()
    assert np.array_equal(got, temporal.smooth_np(outs[1], plates[1], outs[0], zeroed, outs[2], plates[2], 1.0))


def test_alpha_stays_in_range():
    outs, plates = frames()
    ones = [np.ones_like(o) for o in outs]
    got = temporal.smooth_np(ones[1], plates[1], ones[0], plates[0], ones[2], plates[2], 1.0)
    assert got[..., 3].max() <= 1.0 and got[..., 3].min() >= 0.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_strength_outside_the_range_is_refused(bad):
    outs, plates = frames()
    with pytest.raises(ValueError, match="temporal strength must be in"):
        temporal.smooth_np(outs[1], plates[1], None, None, None, None, bad)


# --------------------------------------------------------------------------- the node recipe


def nuke_eval(expr: str, a=None, b=None, pixel=None) -> np.ndarray:
    """One expression node over whole images: variables Ar..Aa, Br..Ba (MergeExpression) or a (Expression),
    ``abs`` and ``clamp`` as Nuke's expression reference defines them; evaluated in float64, stored float32."""
    env = {"abs": np.abs, "clamp": lambda x, lo=0.0, hi=1.0: np.clip(x, lo, hi)}
    for i, c in enumerate("rgba"):
        if a is not None:
            env[f"A{c}"] = a[..., i].astype(np.float64)
        if b is not None:
            env[f"B{c}"] = b[..., i].astype(np.float64)
    if pixel is not None:
        env["a"] = pixel[..., 3].astype(np.float64)
    return np.asarray(eval(expr, {"__builtins__": {}}, env), np.float64).astype(np.float32)  # noqa: S307


def every_channel(value: np.ndarray) -> np.ndarray:
    return np.repeat(value[..., None], 4, axis=2)


def per_channel(exprs, kind, a, b) -> np.ndarray:
    return np.stack([nuke_eval(exprs[f"{kind}.{c}"], a, b) for c in "rgba"], axis=2)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """A whole-pixel shift (a Transform with an integer translate and filter impulse): output (x, y) takes input
    (x - dx, y - dy) in image rows, and what the shift uncovers repeats the edge pixel (outside a bounding box
    Nuke repeats its edge)."""
    h, w = img.shape[:2]
    rows = np.clip(np.arange(h) - dy, 0, h - 1)
    cols = np.clip(np.arange(w) - dx, 0, w - 1)
    return img[rows][:, cols]


def shifted_box_sum(img: np.ndarray, radius: int = 2) -> np.ndarray:
    """The gizmo's box: copies shifted by -radius..radius summed in x (float32, in that order), then the same in y."""
    img = img.astype(np.float32)
    row = shifted(img, -radius, 0)
    for d in range(-radius + 1, radius + 1):
        row = row + shifted(img, d, 0)
    box = shifted(row, 0, -radius)
    for d in range(-radius + 1, radius + 1):
        box = box + shifted(row, 0, d)
    return box


def node_recipe(out, plate, prev_out, prev_plate, next_out, next_plate, s) -> np.ndarray:
    """The gizmo's graph, node by node, with the expressions of temporal.nuke_expressions."""
    exprs = temporal.nuke_expressions(repr(float(s)))

    def rgba(p):
        return np.concatenate([p, np.zeros(p.shape[:2] + (1,), np.float32)], axis=2)  # the hint: unused

    def weight(neighbour_plate):
        diff = every_channel(nuke_eval(exprs["difference"], rgba(neighbour_plate), rgba(plate)))
        return every_channel(nuke_eval(exprs["weight"], pixel=shifted_box_sum(diff)))

    w_prev, w_next = weight(prev_plate), weight(next_plate)
    num = per_channel(exprs, "sum", per_channel(exprs, "weighted", w_prev, prev_out), out)
    num = per_channel(exprs, "sum", per_channel(exprs, "weighted", w_next, next_out), num)
    den = every_channel(nuke_eval(exprs["denominator"], w_prev, w_next))
    return per_channel(exprs, "result", num, den)


@pytest.mark.parametrize("s", [0.4, 1.0])
def test_the_node_recipe_computes_the_formula(s):
    outs, plates = frames(seed=3)
    plates[0][2:6, 3:9] += 0.3
    plates[2][7:, 9:] -= 0.025
    plates[2][0, :4] += 0.6  # a change at the frame's edge
    got = node_recipe(outs[1], plates[1], outs[0], plates[0], outs[2], plates[2], s)
    want = temporal.smooth_np(outs[1], plates[1], outs[0], plates[0], outs[2], plates[2], s)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
    # at the clip's first frame Nuke's TimeOffset -1 gives the held first frame: the frame itself
    got = node_recipe(outs[0], plates[0], outs[0], plates[0], outs[1], plates[1], s)
    np.testing.assert_allclose(got, temporal.smooth_np(outs[0], plates[0], None, None, outs[1], plates[1], s),
                               atol=2e-6, rtol=0)
