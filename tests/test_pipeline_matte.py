"""Postprocess extras against DESIGN.md's formulas: despeckle, premultiplied linear RGBA, checker comp."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from corridorkey_model import pipeline
from corridorkey_model.matte import despeckle


def _disc(h, w, cy, cx, r):
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_despeckle_keeps_big_islands_and_removes_small_ones():
    h, w = 200, 300
    alpha = np.zeros((h, w), np.float32)
    alpha[_disc(h, w, 100, 80, 30)] = 0.9  # area ~2800: kept
    alpha[10:29, 250:271] = 0.8  # 19 x 21 = 399 px: removed
    alpha[150:170, 250:270] = 0.8  # 20 x 20 = 400 px: kept
    alpha[0:3, 0:3] = 1.0  # a speck: removed
    out = despeckle(alpha, min_area=400)
    assert out.dtype == np.float32 and out.shape == alpha.shape
    np.testing.assert_allclose(out[100, 80], alpha[100, 80], atol=1e-6)  # inside a kept island: untouched
    np.testing.assert_allclose(out[160, 260], alpha[160, 260], atol=1e-6)
    assert out[10:29, 250:271].max() == 0.0 and out[0:3, 0:3].max() == 0.0
    assert np.all(out <= alpha + 1e-7)  # only ever multiplies by a mask in [0, 1]


def test_despeckle_threshold_is_above_half_and_mask_reaches_dilate_plus_blur():
    h, w = 160, 160
    alpha = np.zeros((h, w), np.float32)
    alpha[60:100, 60:100] = 1.0  # 1600 px solid block
    soft = np.full((h, w), 0.4, np.float32)  # below the threshold everywhere: a haze
    soft[60:100, 60:100] = 1.0
    out = despeckle(soft, min_area=400, dilate_radius=25, blur_kernel=11)
    # haze within the dilation radius (minus the blur's reach) of the block keeps its value...
    np.testing.assert_allclose(out[80, 100 + 25 - 6], 0.4, atol=1e-6)
    # ...and beyond radius + blur it is gone
    assert out[80, 100 + 25 + 6] == 0.0 and out[5, 5] == 0.0
    # exactly 0.5 is not "solid": a block of 0.5 alone disappears
    half = np.where(alpha > 0, 0.5, 0.0).astype(np.float32)
    assert despeckle(half).max() == 0.0


def test_despeckle_uses_8_connectivity():
    alpha = np.zeros((64, 64), np.float32)
    idx = np.arange(30)
    alpha[idx, idx] = 1.0  # a diagonal line: 30 px, 8-connected, 30 separate 4-connected pixels
    assert abs(despeckle(alpha, min_area=30)[15, 15] - 1.0) < 1e-6
    assert despeckle(alpha, min_area=31).max() == 0.0


def test_premultiplied_linear_and_comp_follow_the_formulas():
    rng = np.random.default_rng(0)
    h, w = 200, 300  # wider than a 128 px checker tile
    fg = rng.random((h, w, 3)).astype(np.float32)
    alpha = rng.random((h, w)).astype(np.float32)
    proc = pipeline.premultiplied_linear(fg, alpha)
    lin = np.where(fg <= 0.04045, fg / 12.92, ((fg.astype(np.float64) + 0.055) / 1.055) ** 2.4)
    assert proc.shape == (h, w, 4) and proc.dtype == np.float32
    np.testing.assert_allclose(proc[..., :3], lin * alpha[..., None], atol=1e-6)
    np.testing.assert_array_equal(proc[..., 3], alpha)

    # the comp through the full postprocess stage (no resize: S == H == W here)
    s = pipeline.KeySettings()
    ref = pipeline.FrameRef(0, 1, "x", None, None)
    sq = 256
    fg_t = torch.from_numpy(rng.random((1, 3, sq, sq)).astype(np.float32))
    a_t = torch.from_numpy(rng.random((1, 1, sq, sq)).astype(np.float32))
    keyed = pipeline.postprocess_frame(pipeline.Inferred(ref, a_t, fg_t, sq, sq), s)
    fgk, ak = keyed.fg.astype(np.float64), keyed.alpha.astype(np.float64)[..., None]
    yy, xx = np.mgrid[0:sq, 0:sq]
    board = np.where(((yy // 128) + (xx // 128)) % 2 == 0, 0.15, 0.55)[..., None]
    dec = lambda x: np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)  # noqa: E731
    mix = dec(fgk) * ak + dec(board) * (1 - ak)
    enc = np.where(mix <= 0.0031308, 12.92 * mix, 1.055 * mix ** (1 / 2.4) - 0.055)
    np.testing.assert_allclose(keyed.comp, enc, atol=2e-5)
    assert keyed.comp[0, 0].mean() != keyed.comp[0, 200].mean()  # two tiles differ


def test_console_entry_point_exit_code(tmp_path):
    (tmp_path / "Shot" / "Input").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "corridorkey_model.cli", "run", str(tmp_path / "Shot"),
                           "--random-init"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "holds no frames" in proc.stderr
