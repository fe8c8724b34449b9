"""Postprocess extras against docs/DESIGN.md §3.4's formulas: despeckle (vs OpenCV), premultiplied linear RGBA, checker comp."""

from __future__ import annotations

import subprocess
import sys

import despeckle_oracle as oracle
import numpy as np
import torch

from corridorkey_model.keying.despeckle import despeckle
from corridorkey_model.pipeline import clips, stages


def _keyed(alpha: np.ndarray, s: stages.KeySettings) -> stages.Keyed:
    """The postprocess stage on a square ``alpha`` at S = H = W (no resize), a random fg."""
    size = alpha.shape[0]
    fg = torch.from_numpy(np.random.default_rng(0).random((1, 3, size, size)).astype(np.float32))
    inferred = stages.Inferred(clips.FrameRef(0, 1, "x", None, None), torch.from_numpy(alpha)[None, None], fg,
                                 size, size)
    return stages.postprocess_frame(inferred, s)


def test_pipeline_despeckle_matches_opencv_and_feeds_every_output():
    alpha = np.clip(oracle.islands_matte(256, 256, 120, seed=3), 0.0, 1.0)
    plain = _keyed(alpha, stages.KeySettings())
    keyed = _keyed(alpha, stages.KeySettings(despeckle=True, despeckle_size=120))
    want = oracle.despeckle(plain.alpha, 120)
    assert np.abs(want - plain.alpha).max() > 0.5  # islands were removed
    np.testing.assert_allclose(keyed.alpha, want, rtol=0, atol=1e-5)
    # the torch function itself (what the .pt runs), not another implementation
    np.testing.assert_array_equal(keyed.alpha, despeckle(torch.from_numpy(plain.alpha)[None, None], 120)[0, 0].numpy())
    np.testing.assert_array_equal(keyed.fg, plain.fg)
    np.testing.assert_array_equal(keyed.processed[..., 3], keyed.alpha)
    np.testing.assert_allclose(keyed.processed[..., :3], stages.premultiplied_linear(keyed.fg, keyed.alpha)[..., :3])
    changed = np.abs(keyed.alpha - plain.alpha) > 0.1
    assert np.abs(keyed.comp - plain.comp)[changed].max() > 0.01  # the comp uses the despeckled alpha


def test_pipeline_despeckle_size_0_is_off_like_the_knob():
    alpha = np.full((128, 128), 0.3, np.float32)  # haze, and one solid block: size 1 keeps the block, drops the haze
    alpha[10:30, 10:30] = 0.9
    plain = _keyed(alpha, stages.KeySettings())
    np.testing.assert_array_equal(_keyed(alpha, stages.KeySettings(despeckle=True, despeckle_size=0)).alpha,
                                  plain.alpha)
    assert np.abs(_keyed(alpha, stages.KeySettings(despeckle=True, despeckle_size=1)).alpha - plain.alpha).max() > 0.1


def test_pipeline_despeckle_defaults_off_and_400_px_when_on():
    defaults = stages.KeySettings()  # the pipeline's defaults are unchanged: off, 400 px when on
    assert stages.RUN_DESPECKLE_SIZE == 400 and defaults.despeckle_size == 400 and not defaults.despeckle


def test_premultiplied_linear_and_comp_follow_the_formulas():
    rng = np.random.default_rng(0)
    h, w = 200, 300  # wider than a 128 px checker tile
    fg = rng.random((h, w, 3)).astype(np.float32)
    alpha = rng.random((h, w)).astype(np.float32)
    proc = stages.premultiplied_linear(fg, alpha)
    lin = np.where(fg <= 0.04045, fg / 12.92, ((fg.astype(np.float64) + 0.055) / 1.055) ** 2.4)
    assert proc.shape == (h, w, 4) and proc.dtype == np.float32
    np.testing.assert_allclose(proc[..., :3], lin * alpha[..., None], atol=1e-6)
    np.testing.assert_array_equal(proc[..., 3], alpha)

    # the comp through the full postprocess stage (no resize: S == H == W here)
    s = stages.KeySettings()
    ref = clips.FrameRef(0, 1, "x", None, None)
    sq = 256
    fg_t = torch.from_numpy(rng.random((1, 3, sq, sq)).astype(np.float32))
    a_t = torch.from_numpy(rng.random((1, 1, sq, sq)).astype(np.float32))
    keyed = stages.postprocess_frame(stages.Inferred(ref, a_t, fg_t, sq, sq), s)
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
    proc = subprocess.run([sys.executable, "-m", "corridorkey_model.pipeline.cli", "run", str(tmp_path / "Shot"),
                           "--random-init"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "holds no frames" in proc.stderr
