"""``corridorkey run --screen green|blue|auto``: the per-clip decision, the blue model, missing checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from corridorkey_model.keying import frame
from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.pipeline import clips, frame_io, stages
from corridorkey_model.pipeline.cli import main
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor, save_checkpoint

S = 64
H, W = 48, 64


# --------------------------------------------------------------------------- the decision (upstream's rule)


def frame_with(screen_rgb, background_share: float):
    """A plate whose left ``background_share`` of columns is screen (hint 0) and the rest subject (hint 1)."""
    plate = np.empty((20, 100, 3), np.float32)
    plate[:] = (0.7, 0.5, 0.4)
    hint = np.ones((20, 100), np.float32)
    cols = int(round(100 * background_share))
    plate[:, :cols] = screen_rgb
    hint[:, :cols] = 0.0
    return plate, hint


@pytest.mark.parametrize("rgb,expected", [((0.1, 0.6, 0.2), "green"), ((0.1, 0.2, 0.6), "blue"),
                                          ((0.2, 0.35, 0.45), "blue")])
def test_auto_compares_mean_green_and_blue_over_the_background(rgb, expected):
    decision = stages.detect_screen(*frame_with(rgb, 0.5))
    assert decision.screen == expected and not decision.fallback
    assert "mean G" in decision.reason and "mean B" in decision.reason


def test_auto_falls_back_to_green_on_a_tiny_background():
    decision = stages.detect_screen(*frame_with((0.0, 0.0, 1.0), 0.0))  # no hint below 0.3 at all
    assert decision.screen == "green" and decision.fallback and "1%" in decision.reason


def test_auto_falls_back_to_green_when_the_means_are_close():
    decision = stages.detect_screen(*frame_with((0.3, 0.40, 0.44), 0.5))  # |G - B| = 0.04 < 0.05
    assert decision.screen == "green" and decision.fallback and "0.05" in decision.reason


def test_hint_threshold_is_below_point_three():
    plate, hint = frame_with((0.1, 0.2, 0.6), 0.5)
    hint[hint == 0.0] = 0.3  # exactly 0.3 is not background: nothing left to judge by
    assert stages.detect_screen(plate, hint).fallback


# --------------------------------------------------------------------------- end to end


def make_clip(root: Path, screen_channel: int, n: int = 2) -> Path:
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    for i in range(n):
        p = green_screen_plate(H, W, seed=i, screen_channel=screen_channel)
        cv2.imwrite(str(root / "Input" / f"shot.{1001 + i}.png"), frame_io.to_uint8(p[..., 2::-1]))
        cv2.imwrite(str(root / "AlphaHint" / f"matte_{i:03d}.png"), frame_io.to_uint8(p[..., 3]))
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screens")
    green = save_checkpoint(make_random_model(S, seed=1), folder / "green.pth", layout="bare")
    blue = save_checkpoint(make_random_model(S, seed=2), folder / "blue.pth", layout="bare")
    return green, blue


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.mark.slow
def test_auto_keys_each_clip_with_its_screens_model(tmp_path, checkpoints, caplog):
    green_ckpt, blue_ckpt = checkpoints
    shots = tmp_path / "shots"
    make_clip(shots / "A_green", 1)
    make_clip(shots / "B_blue", 2)
    with caplog.at_level(logging.INFO, logger="corridorkey_model"):
        result, text = run_cli(shots, "--screen", "auto", "--checkpoint", green_ckpt, "--blue-checkpoint", blue_ckpt,
                               "--img-size", S, "--despill", 10, "--device", "cpu", "--format", "exr",
                               "--exr-type", "float")
    assert result.exit_code == 0, text
    assert "A_green: green screen" in caplog.text and "B_blue: blue screen" in caplog.text
    assert "blue-screen model" in caplog.text and str(blue_ckpt) in caplog.text  # which file for which screen
    # The blue clip's matte is the blue model's, despilled on blue: equal to the reference with channel 2.
    blue_model, _ = load_model(blue_ckpt, img_size=S, screen="blue")
    clip = clips.load_clip(clips.scan(shots / "B_blue")[0])
    plate = stages.read_frame(next(iter(stages.iter_tasks(clip, clip.frames)))).plate
    with torch.no_grad():
        ref = frame.key_frame(blue_model, plate_tensor(plate), 0, 10.0, 1.0, 0, 2)[0].permute(1, 2, 0).numpy()
    fg = frame_io.read_image(shots / "B_blue" / "Output" / "FG" / "shot.1001.exr")
    np.testing.assert_allclose(fg, ref[..., :3], atol=2e-5)


@pytest.mark.slow
def test_a_missing_blue_checkpoint_stops_before_any_frame(tmp_path, checkpoints, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clip = make_clip(tmp_path / "B_blue", 2)
    result, text = run_cli(clip, "--screen", "blue", "--img-size", S, "--device", "cpu")
    assert result.exit_code == 1
    assert "CorridorKeyBlue_1.0.safetensors" in text and "--checkpoint PATH with --screen blue" in text
    assert not (clip / "Output").exists(), "a failed run leaves no empty folders"
    # --screen auto with a blue clip and only the green weights given: the blue model is missing
    result, text = run_cli(clip, "--screen", "auto", "--checkpoint", checkpoints[0], "--img-size", S,
                           "--device", "cpu")
    assert result.exit_code == 1 and "--blue-checkpoint" in text
    assert not (clip / "Output").exists()


def test_random_init_excludes_checkpoints(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"")
    result, text = run_cli(make_clip(tmp_path / "c", 1, 1), "--random-init", "--blue-checkpoint", tmp_path / "x.pth")
    assert result.exit_code == 2 and "not both" in text
