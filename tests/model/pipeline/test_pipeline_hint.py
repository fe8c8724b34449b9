"""``corridorkey run --hint auto`` and ``--write-hints`` (issue 22), and farm-job carrying them.

A synthetic checkpoint at S=128 (random weights, NOT a keyer); clips are a few 96x64 frames.
The expected outputs are computed with ``frame.key_frame`` / ``frame.preprocess`` on the
plates as the pipeline reads them, and the written hint with the resize written out here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from corridorkey_model.keying import frame
from corridorkey_model.keying.colour import resize_bilinear_aa
from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.pipeline import clips, frame_io, stages
from corridorkey_model.pipeline.cli import main, run
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor, save_checkpoint

S = 128
H, W = 64, 96
N = 3
FOLDERS = ("Matte", "FG", "Processed", "Comp", "Hint")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_checkpoint(make_random_model(S, seed=5), tmp_path_factory.mktemp("ckpt") / "w.pth", layout="bare")


@pytest.fixture(scope="module")
def model(ckpt):
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    return load_model(ckpt, img_size=S)[0]


def make_clip(root: Path, hints: bool = True, n: int = N) -> Path:
    (root / "Input").mkdir(parents=True)
    if hints:
        (root / "AlphaHint").mkdir()
    for i in range(n):
        p = green_screen_plate(H, W, seed=i)
        frame_io.write_image(root / "Input" / f"shot.{1001 + i}.png", p[..., :3])
        if hints:
            frame_io.write_image(root / "AlphaHint" / f"m{i}.png", p[..., 3])
    return root


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def plates_as_read(root: Path):
    """RGB plates as the pipeline reads them (16-bit PNG), H x W x 3."""
    return [frame_io.plate_rgb(frame_io.read_image(p)) for p in sorted((root / "Input").iterdir())]


def read_exr(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float32)


def half_tol(x):
    return np.abs(x) * 2.0 ** -11 + 1e-6


def expected_hint(rgba: np.ndarray, auto: int) -> np.ndarray:
    """The network's hint channel (frame.preprocess at S) resized back to H x W, antialiased bilinear."""
    x = frame.preprocess(plate_tensor(rgba), S, frame.GAMMA_SRGB, auto, 1)
    return resize_bilinear_aa(x[:, 3:4], H, W)[0, 0].numpy()


def test_clip_without_hints_fails_and_names_hint_auto(tmp_path):
    root = make_clip(tmp_path / "Shot_A", hints=False, n=1)
    result, text = run_cli(root, "--random-init", "--img-size", S)
    assert result.exit_code == 1
    assert "has no alpha hint" in text and "--hint auto" in text
    assert not (root / "Output").exists()


def test_hint_auto_keys_a_clip_without_hints_and_writes_the_hint(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_B", hints=False)
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto", "--write-hints",
                           "--exr-type", "float")
    assert result.exit_code == 0, text
    assert "automatic hint" in text
    for folder in FOLDERS:
        assert len([p for p in (root / "Output" / folder).iterdir()]) == N, folder
    for i, rgb in enumerate(plates_as_read(root)):
        rgba = np.concatenate([rgb, np.zeros((H, W, 1), np.float32)], axis=2)
        name = f"shot.{1001 + i}.exr"
        ref = frame.key_frame(model, plate_tensor(rgba), frame.GAMMA_SRGB, auto_hint=1)[0, 3].numpy()
        assert np.abs(read_exr(root / "Output" / "Matte" / name) - ref).max() <= 1e-5
        hint = read_exr(root / "Output" / "Hint" / name)
        assert hint.shape == (H, W)  # one channel
        assert np.abs(hint - expected_hint(rgba, 1)).max() <= 1e-6
        assert hint.max() > 0.5 and hint.min() == 0.0  # a subject and a screen: not a constant


def test_hint_auto_ignores_an_alphahint_folder(tmp_path, ckpt, caplog):
    caplog.set_level(logging.INFO, logger="corridorkey_model.pipeline.cli")
    with_hints = make_clip(tmp_path / "Shot_C", hints=True, n=1)
    for p in (with_hints / "AlphaHint").iterdir():
        p.write_bytes(b"not an image: --hint auto must not read it")
    without = make_clip(tmp_path / "Shot_D", hints=False, n=1)
    for root in (with_hints, without):
        result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto")
        assert result.exit_code == 0, text
    name = "Matte/shot.1001.exr"
    assert np.array_equal(read_exr(with_hints / "Output" / name), read_exr(without / "Output" / name))
    # --hint auto says how to add a garbage matte (issue 30)
    assert any("add --garbage-matte PATH" in r.getMessage() for r in caplog.records)


def test_write_hints_writes_the_file_hint_it_keyed_with_and_counts_for_resume(tmp_path, ckpt):
    root = make_clip(tmp_path / "Shot_E")
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--format", "png")
    assert result.exit_code == 0, text
    assert not (root / "Output" / "Hint").exists()  # only when asked
    # asked now: every frame lacks its Hint/ file, so every frame is keyed again
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--format", "png", "--write-hints")
    assert result.exit_code == 0, text
    assert f"done: {N} frame(s) keyed, 0 skipped" in text
    hint_files = sorted((root / "Output" / "Hint").iterdir())
    assert [p.name for p in hint_files] == [f"shot.{1001 + i}.png" for i in range(N)]
    hints = [frame_io.read_image(p) for p in sorted((root / "AlphaHint").iterdir())]
    for rgb, hint, written in zip(plates_as_read(root), hints, hint_files):
        rgba = np.concatenate([rgb, frame_io.hint_channel(hint)[..., None]], axis=2)
        got = frame_io.read_image(written)
        assert got.shape[:2] == (H, W) and got.size == H * W  # one channel
        assert np.abs(got.reshape(H, W) - expected_hint(rgba, 0)).max() <= 1.0 / 65535 + 1e-6
    # resume: a frame without its hint file is not done
    hint_files[1].unlink()
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--format", "png", "--write-hints")
    assert result.exit_code == 0, text
    assert f"done: 1 frame(s) keyed, {N - 1} skipped" in text and hint_files[1].exists()


def test_hint_option_help_and_bad_values(tmp_path):
    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert "PATH|auto" in text and "--write-hints" in text and "auto: make a rough hint" in text
    root = make_clip(tmp_path / "Shot_F", n=1)
    result, text = run_cli(root, "--random-init", "--hint", tmp_path / "missing")
    assert result.exit_code == 2 and "missing" in text


def test_screen_auto_without_a_hint_reads_the_whole_frame(tmp_path):
    root = make_clip(tmp_path / "Shot_G", hints=False, n=1)
    clip = clips.load_clip(clips.scan(root)[0], auto_hint=True)
    assert clip.hint is None and clip.frames[0].hint is None
    decision = stages.decide_screen(clip, "auto")
    assert decision.screen == "green" and not decision.fallback and "whole first frame" in decision.reason


def test_farm_job_carries_hint_auto_and_write_hints(tmp_path):
    pytest.importorskip("openjd.model", reason="openjd-model is not installed")
    import yaml

    root = make_clip(tmp_path / "Shot_H", hints=False, n=2)
    job = tmp_path / "job.yaml"
    result = CliRunner().invoke(main, ["farm-job", str(root), "--output", str(job), "--random-init",
                                       "--hint", "auto", "--write-hints"])
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(job.read_text())
    params = {d["name"]: d for d in template["parameterDefinitions"]}
    assert params["Hint"]["type"] == "STRING" and params["Hint"]["default"] == "auto"
    assert params["WriteHints"]["default"] == "--write-hints"
    script = str(template["steps"][0]["script"])
    assert "--hint={{Param.Hint}}" in script and "{{Param.WriteHints}}" in script
    # what a task passes back reads as the same run options
    parsed = run.make_context("run", [str(root), "--hint", "auto", "--write-hints"]).params
    assert parsed["hint"] == "auto" and parsed["write_hints"] is True
    # without --hint auto the job refuses the clip as run would
    result = CliRunner().invoke(main, ["farm-job", str(root), "--output", str(tmp_path / "j2.yaml"), "--random-init"])
    assert result.exit_code == 1 and "--hint auto" in result.output


def test_hint_auto_that_finds_no_screen_warns_once_per_clip(tmp_path, caplog):
    """Issue #31 defect 17: a blue plate keyed with --screen green --hint auto got a solid 1.0 hint, silently."""
    root = tmp_path / "Shot_blue"
    (root / "Input").mkdir(parents=True)
    for i in range(3):
        img = np.zeros((H, W, 3), np.float32)
        img[...] = (0.1, 0.2, 0.8)  # a blue screen
        img[H // 4:3 * H // 4, W // 4:3 * W // 4] = (0.6, 0.5, 0.4)
        frame_io.write_image(root / "Input" / f"shot.{1001 + i}.png", img)
    with caplog.at_level(logging.WARNING, logger="corridorkey_model"):
        result, text = run_cli(root, "--random-init", "--img-size", S, "--hint", "auto", "--io-threads", 1)
    assert result.exit_code == 0, text
    found = [r.getMessage() for r in caplog.records if "finds no green screen" in r.getMessage()]
    assert len(found) == 1 and "shot.1001.png" in found[0] and "--screen auto" in found[0] and "blue" in found[0]
    assert "no green screen in 3 frame(s)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="corridorkey_model"):
        result, text = run_cli(root, "--random-init", "--img-size", S, "--hint", "auto", "--screen", "blue",
                               "--overwrite", "--io-threads", 1)
    assert result.exit_code == 0, text
    assert "finds no" not in caplog.text  # the blue screen is found


# --------------------------------------------------------------------------- --garbage-matte (issue 30)


def garbage(h: int = H, w: int = W) -> np.ndarray:
    """A matte that keeps the top half of the frame (the subject may be there) and drops the bottom half."""
    m = np.zeros((h, w), np.float32)
    m[: h // 2] = 1.0
    return m


def test_garbage_matte_still_multiplies_the_automatic_hint_on_every_frame(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_I", hints=False)
    still = tmp_path / "garbage.png"
    frame_io.write_image(still, garbage())
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto", "--garbage-matte", still,
                           "--write-hints", "--exr-type", "float")
    assert result.exit_code == 0, text
    assert "automatic hint x garbage matte" in text
    matte = frame_io.hint_channel(frame_io.read_image(still))  # as read: 16-bit PNG
    for i, rgb in enumerate(plates_as_read(root)):
        rgba = np.concatenate([rgb, matte[..., None]], axis=2)
        name = f"shot.{1001 + i}.exr"
        ref = frame.key_frame(model, plate_tensor(rgba), frame.GAMMA_SRGB, auto_hint=2)[0, 3].numpy()
        assert np.abs(read_exr(root / "Output" / "Matte" / name) - ref).max() <= 1e-5
        hint = read_exr(root / "Output" / "Hint" / name)
        assert np.abs(hint - expected_hint(rgba, 2)).max() <= 1e-6
        auto = expected_hint(np.concatenate([rgb, np.zeros((H, W, 1), np.float32)], axis=2), 1)
        assert auto[H // 2 + 4:].max() > 0.5  # the subject reaches into the dropped half ...
        assert hint[H // 2 + 4:].max() == 0.0  # ... and the matte removed it there
        assert np.abs(hint[: H // 2 - 4] - auto[: H // 2 - 4]).max() <= 1e-6  # where the matte is 1: unchanged
    record = (root / "Output" / "corridorkey_settings.json").read_text()
    assert '"auto_hint": 2' in record and str(still.absolute()) in record
    # a resume without the garbage matte would mix two keys: refused, naming it
    (root / "Output" / "Matte" / f"shot.{1000 + N}.exr").unlink()
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto")
    assert result.exit_code == 1 and "garbage_matte" in text


def test_garbage_matte_folder_follows_the_hint_rules(tmp_path, ckpt):
    root = make_clip(tmp_path / "Shot_J", hints=False, n=2)
    folder = tmp_path / "GM"
    folder.mkdir()
    frame_io.write_image(folder / "gm.0001.png", garbage())
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto", "--garbage-matte", folder)
    assert result.exit_code == 1 and "2 input frame(s)" in text and "1 hint" in text  # one per frame
    frame_io.write_image(folder / "gm.0002.png", garbage(H // 2, W))  # another aspect ratio: refused up front
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto", "--garbage-matte", folder)
    assert result.exit_code == 1 and "another aspect ratio" in text and "gm.0002.png" in text
    still = tmp_path / "small.png"
    frame_io.write_image(still, garbage(H // 2, W))
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--hint", "auto", "--garbage-matte", still)
    assert result.exit_code == 1 and f"{W}x{H // 2}" in text
    assert not (root / "Output").exists()


def test_garbage_matte_needs_hint_auto(tmp_path):
    root = make_clip(tmp_path / "Shot_K", n=1)
    still = tmp_path / "garbage.png"
    frame_io.write_image(still, garbage())
    result, text = run_cli(root, "--random-init", "--garbage-matte", still)
    assert result.exit_code == 2 and "--hint auto" in text and str(still) in text
    text = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert "--garbage-matte" in text and "never subject" in text and "add --garbage-matte" in text


def test_one_garbage_matte_for_a_folder_of_clips_is_refused_naming_it(tmp_path):
    """A garbage matte belongs to one shot: a folder of clips is refused, the error naming --garbage-matte."""
    make_clip(tmp_path / "clips" / "Shot_A", hints=False, n=1)
    make_clip(tmp_path / "clips" / "Shot_B", hints=False, n=1)
    still = tmp_path / "garbage.png"
    frame_io.write_image(still, garbage())
    result, text = run_cli(tmp_path / "clips", "--random-init", "--img-size", S, "--hint", "auto",
                           "--garbage-matte", still)
    assert result.exit_code == 1, text
    assert "--garbage-matte applies to a single clip" in text and "--hint applies" not in text
    assert "Shot_A" in text and "Shot_B" in text
    assert not (tmp_path / "clips" / "Shot_A" / "Output").exists()
    # the farm job's expansion makes the same check
    result = CliRunner().invoke(main, ["farm-job", str(tmp_path / "clips"), "--output", str(tmp_path / "job.yaml"),
                                       "--random-init", "--hint", "auto", "--garbage-matte", str(still)])
    assert result.exit_code != 0 and "--garbage-matte applies to a single clip" in result.output
    assert not (tmp_path / "job.yaml").exists()


def test_screen_auto_with_a_garbage_matte_reads_inside_it(tmp_path):
    root = make_clip(tmp_path / "Shot_L", hints=False, n=1)
    rgb = frame_io.plate_rgb(frame_io.read_image(root / "Input" / "shot.1001.png")).copy()
    rgb[:, 2 * W // 3:] = (0.1, 0.2, 0.9)  # a blue studio wall outside the matte, most of what is left
    frame_io.write_image(root / "Input" / "shot.1001.png", rgb)
    still = tmp_path / "garbage.png"
    matte = np.zeros((H, W), np.float32)
    matte[:, : W // 3] = 1.0  # only the green left third is inside
    frame_io.write_image(still, matte)
    clip = clips.load_clip(clips.scan(root, hint=still)[0], garbage_matte=True)
    assert [r.hint for r in clip.frames] == [still]
    assert stages.decide_screen(clip, "auto").screen == "blue"  # the whole frame: the wall wins
    decision = stages.decide_screen(clip, "auto", garbage_matte=True)
    assert decision.screen == "green" and "garbage matte" in decision.reason


def test_farm_job_carries_the_garbage_matte(tmp_path):
    pytest.importorskip("openjd.model", reason="openjd-model is not installed")
    import yaml

    root = make_clip(tmp_path / "Shot_M", hints=False, n=2)
    still = tmp_path / "garbage.png"
    frame_io.write_image(still, garbage())
    job = tmp_path / "job.yaml"
    result = CliRunner().invoke(main, ["farm-job", str(root), "--output", str(job), "--random-init",
                                       "--hint", "auto", "--garbage-matte", str(still)])
    assert result.exit_code == 0, result.output
    template = yaml.safe_load(job.read_text())
    params = {d["name"]: d for d in template["parameterDefinitions"]}
    assert params["GarbageMatte"]["type"] == "PATH" and params["GarbageMatte"]["dataFlow"] == "IN"
    assert "--garbage-matte={{Param.GarbageMatte}}" in str(template["steps"][0]["script"])
    parsed = run.make_context("run", [str(root), "--hint", "auto", "--garbage-matte", str(still)]).params
    assert parsed["garbage_matte"] == still
    # without --hint auto the job is refused as run refuses it
    result = CliRunner().invoke(main, ["farm-job", str(root), "--output", str(tmp_path / "j2.yaml"), "--random-init",
                                       "--garbage-matte", str(still)])
    assert result.exit_code == 2 and "--hint auto" in result.output
