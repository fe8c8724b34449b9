"""The reference pipeline end to end: CLI on tiny clips vs frame.key_frame, errors, resume, chunks.

A synthetic checkpoint at S=128 (random weights, NOT a keyer) is built once per module;
clips are a few 96x64 synthetic green-screen frames.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from corridorkey_model.keying import frame
from corridorkey_model.keying.despeckle import despeckle
from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.pipeline import clips, frame_io, outputs, stages
from corridorkey_model.pipeline.cli import main
from corridorkey_model.pipeline.frame_io import ExrOptions
from corridorkey_model.testing import (
    RANDOM_INIT_WARNING,
    green_screen_plate,
    make_random_model,
    plate_tensor,
    save_checkpoint,
)

S = 128
H, W = 64, 96
N_FRAMES = 3
FOLDERS = ("Matte", "FG", "Processed", "Comp")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt128") / "synthetic_128.pth"
    return save_checkpoint(make_random_model(S, seed=3), path, layout="bare")


@pytest.fixture(scope="module")
def model(ckpt):
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    m, _ = load_model(ckpt, img_size=S)
    return m


def _despeckle_np(alpha: np.ndarray, min_area: int) -> np.ndarray:
    """The despeckle torch function (what the .pt runs) on an ``H x W`` array."""
    return despeckle(torch.from_numpy(np.array(alpha, dtype=np.float32))[None, None], min_area)[0, 0].numpy()


def make_clip(root: Path, kind: str = "png8", n: int = N_FRAMES, first: int = 1001) -> Path:
    """A clip folder: Input/shot.NNNN.<ext> plates and AlphaHint/ hints (different names, same order)."""
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    plates = []
    for i in range(n):
        p = green_screen_plate(H, W, seed=i, linear=(kind == "exr"), extremes=(kind == "exr"))
        plates.append(p)
        name = f"shot.{first + i}"
        if kind == "png8":
            cv2.imwrite(str(root / "Input" / f"{name}.png"), frame_io.to_uint8(p[..., 2::-1]))
            cv2.imwrite(str(root / "AlphaHint" / f"matte_{i:03d}.png"), frame_io.to_uint8(p[..., 3]))
        elif kind == "png16":
            frame_io.write_image(root / "Input" / f"{name}.png", p[..., :3])
            # an RGBA hint: the alpha channel is the hint, RGB deliberately holds something else
            rgba = np.concatenate([np.full((H, W, 3), 0.25, np.float32), p[..., 3:]], -1)
            frame_io.write_image(root / "AlphaHint" / f"matte_{i:03d}.png", rgba)
        elif kind == "exr":
            frame_io.write_image(root / "Input" / f"{name}.exr", p[..., :3], ExrOptions("float"))
            frame_io.write_image(root / "AlphaHint" / f"matte_{i:03d}.exr", p[..., 3], ExrOptions("float"))
        else:
            raise ValueError(kind)
    return root


def loaded_plates(clip_root: Path):
    """Plates as the pipeline reads them (after 8/16-bit quantisation), H x W x 4."""
    clip = clips.load_clip(clips.scan(clip_root)[0])
    return clip, [stages.read_frame(t).plate for t in stages.iter_tasks(clip, clip.frames)]


def reference(model, plate: np.ndarray, gamma: int, despill: float, refiner: float):
    """frame.key_frame: (fg H x W x 3, alpha H x W)."""
    out = frame.key_frame(model, plate_tensor(plate), gamma, despill, refiner)[0].permute(1, 2, 0).numpy()
    return out[..., :3], out[..., 3]


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def srgb_to_linear_formula(x):
    """The IEC 61966-2-1 decode, written out here independently of colour.py."""
    x = np.maximum(x.astype(np.float64), 0.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def half_tol(x):
    return np.abs(x) * 2.0 ** -11 + 1e-7


def read_raw(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def check_layout(out_dir: Path, names, image_ext: str = ".exr"):
    for folder in FOLDERS:
        ext = {"Processed": ".exr", "Comp": ".png"}.get(folder, image_ext)
        files = sorted(p.name for p in (out_dir / folder).iterdir())
        assert files == sorted(n + ext for n in names), folder


# --------------------------------------------------------------------------- end to end


def test_png8_clip_two_devices_float_exr_matches_key_frame(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_010", "png8")
    despill, refiner = 6.0, 0.6
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--despill", despill, "--refiner",
                           refiner, "--exr-type", "float", "--device", "cpu,cpu")
    assert result.exit_code == 0, text
    assert "3 frame(s) keyed" in text
    out_dir = root / "Output"
    names = [f"shot.{1001 + i}" for i in range(N_FRAMES)]
    check_layout(out_dir, names)
    assert not [p for p in out_dir.rglob(".*")], "temporary files left behind"
    _clip, plates = loaded_plates(root)
    for name, plate in zip(names, plates):
        fg_ref, alpha_ref = reference(model, plate, frame.GAMMA_SRGB, despill, refiner)
        matte, fg = read_raw(out_dir / "Matte" / f"{name}.exr"), read_raw(out_dir / "FG" / f"{name}.exr")
        assert matte.dtype == np.float32 and matte.shape == (H, W)
        assert fg.dtype == np.float32 and fg.shape == (H, W, 3)
        np.testing.assert_allclose(matte, alpha_ref, atol=1e-5, rtol=0)
        np.testing.assert_allclose(fg[..., ::-1], fg_ref, atol=1e-5, rtol=0)
        assert 0.0 <= matte.min() and matte.max() <= 1.0
        # Processed: linear premultiplied RGBA, alpha in channel 4
        proc = frame_io.read_image(out_dir / "Processed" / f"{name}.exr")
        assert proc.shape == (H, W, 4) and proc.dtype == np.float32
        expect = srgb_to_linear_formula(fg_ref) * alpha_ref[..., None]
        np.testing.assert_allclose(proc[..., :3], expect, atol=1e-5, rtol=0)
        np.testing.assert_allclose(proc[..., 3], alpha_ref, atol=1e-5, rtol=0)
        # Comp: 8-bit sRGB PNG; a 96x64 frame lies inside the first (dark, 0.15) checker tile
        comp = read_raw(out_dir / "Comp" / f"{name}.png")
        assert comp.dtype == np.uint8 and comp.shape == (H, W, 3)
        bg = srgb_to_linear_formula(np.float64(0.15))
        lin = srgb_to_linear_formula(fg_ref) * alpha_ref[..., None] + bg * (1 - alpha_ref[..., None])
        enc = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
        assert np.abs(comp[..., ::-1] / 255.0 - np.clip(enc, 0, 1)).max() <= 0.5 / 255 + 1e-4


def test_png16_rgba_hint_half_exr_default(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_020", "png16")
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S)
    assert result.exit_code == 0, text
    out_dir = root / "Output"
    names = [f"shot.{1001 + i}" for i in range(N_FRAMES)]
    check_layout(out_dir, names)
    clip, plates = loaded_plates(root)
    assert plates[0][..., 3].max() == 1.0 and plates[0][..., 3].min() == 0.0  # the alpha channel, not RGB's 0.25
    for name, plate in zip(names, plates):
        fg_ref, alpha_ref = reference(model, plate, frame.GAMMA_SRGB, 0.0, 1.0)
        matte = read_raw(out_dir / "Matte" / f"{name}.exr")
        fg = read_raw(out_dir / "FG" / f"{name}.exr")[..., ::-1]
        assert np.all(np.abs(matte - alpha_ref) <= half_tol(alpha_ref))
        assert np.all(np.abs(fg - fg_ref) <= half_tol(fg_ref))
        # half really is half: not every value is a float32 that survives the round trip
        assert np.abs(matte - alpha_ref).max() > 0


def test_in_memory_stages_equal_key_frame(ckpt, model, tmp_path):
    """The stage functions' float results (before any file) equal frame.key_frame within 1e-5."""
    root = make_clip(tmp_path / "Shot_030", "png16", n=2)
    clip, plates = loaded_plates(root)
    s = stages.KeySettings(gamma_input=1, despill_strength=10.0, refiner_strength=0.3)
    worker = stages.Worker(model, torch.device("cpu"))
    for task in stages.iter_tasks(clip, clip.frames):
        loaded = stages.read_frame(task)
        keyed = stages.postprocess_frame(stages.infer(worker.model, worker.device, stages.preprocess_frame(
            loaded, S, s), s), s)
        fg_ref, alpha_ref = reference(model, loaded.plate, 1, 10.0, 0.3)
        np.testing.assert_allclose(keyed.alpha, alpha_ref, atol=1e-5, rtol=0)
        np.testing.assert_allclose(keyed.fg, fg_ref, atol=1e-5, rtol=0)
        # and the knobs matter: another despill gives another fg
        fg_other, _ = reference(model, loaded.plate, 1, 0.0, 0.3)
        assert np.abs(fg_other - keyed.fg).max() > 1e-3
        # despeckle applies to the reference alpha, and Processed/Comp use the despeckled alpha
        sd = dataclasses.replace(s, despeckle=True, despeckle_size=50)
        keyed_d = stages.postprocess_frame(stages.infer(worker.model, worker.device, stages.preprocess_frame(
            loaded, S, sd), sd), sd)
        np.testing.assert_allclose(keyed_d.alpha, _despeckle_np(alpha_ref, 50), atol=1e-5, rtol=0)
        np.testing.assert_array_equal(keyed_d.processed[..., 3], keyed_d.alpha)
        np.testing.assert_allclose(keyed_d.fg, keyed.fg, atol=0)


def test_exr_clip_auto_gamma_is_linear_png16_outputs(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_040", "exr")
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--format", "png", "--despill", 3)
    assert result.exit_code == 0, text
    assert "gamma Linear" in text
    out_dir = root / "Output"
    names = [f"shot.{1001 + i}" for i in range(N_FRAMES)]
    check_layout(out_dir, names, image_ext=".png")
    _clip, plates = loaded_plates(root)
    assert plates[0][..., :3].max() > 1.0 and plates[0][..., :3].min() < 0.0  # float plate kept as is
    for name, plate in zip(names, plates):
        fg_ref, alpha_ref = reference(model, plate, frame.GAMMA_LINEAR, 3.0, 1.0)
        matte = read_raw(out_dir / "Matte" / f"{name}.png")
        fg = read_raw(out_dir / "FG" / f"{name}.png")
        assert matte.dtype == np.uint16 and matte.shape == (H, W)
        assert fg.dtype == np.uint16 and fg.shape == (H, W, 3)
        step = 0.5 / 65535 + 1e-6
        assert np.abs(matte / 65535.0 - alpha_ref).max() <= step
        assert np.abs(fg[..., ::-1] / 65535.0 - np.clip(fg_ref, 0, 1)).max() <= step
        _fg_srgb, alpha_srgb = reference(model, plate, frame.GAMMA_SRGB, 3.0, 1.0)
        assert np.abs(alpha_srgb - alpha_ref).max() > 10 * step  # auto did pick linear


def test_video_input(tmp_path, ckpt, model):
    root = tmp_path / "Shot_050"
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    plates = [green_screen_plate(H, W, seed=10 + i) for i in range(N_FRAMES)]
    frame_io.write_video(root / "Input" / "plate.mp4", [p[..., :3] for p in plates])
    for i, p in enumerate(plates):
        frame_io.write_image(root / "AlphaHint" / f"h{i}.png", p[..., 3])
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--frames", "2-3", "--exr-type", "float")
    assert result.exit_code == 0, text
    out_dir = root / "Output"
    check_layout(out_dir, ["plate.0002", "plate.0003"])
    decoded = dict(frame_io.iter_video(root / "Input" / "plate.mp4"))
    for number in (2, 3):
        hint = frame_io.read_image(root / "AlphaHint" / f"h{number - 1}.png")[..., 0]
        plate = np.concatenate([decoded[number - 1], hint[..., None]], -1)
        _fg_ref, alpha_ref = reference(model, plate, frame.GAMMA_SRGB, 0.0, 1.0)
        matte = read_raw(out_dir / "Matte" / f"plate.{number:04d}.exr")
        np.testing.assert_allclose(matte, alpha_ref, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- resume and chunks


def _stamp(paths):
    return {p: (os.stat(p).st_ino, os.stat(p).st_mtime_ns) for p in paths}


def test_frames_chunk_then_resume_then_overwrite(tmp_path, ckpt):
    root = make_clip(tmp_path / "Shot_060", "png8", n=4, first=1001)
    out_dir = root / "Output"
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--frames", "1002-1003")
    assert result.exit_code == 0, text
    check_layout(out_dir, ["shot.1002", "shot.1003"])
    first = _stamp(sorted(out_dir.rglob("shot.*")))
    assert len(first) == 8

    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S)  # the whole clip: resumes
    assert result.exit_code == 0, text
    assert "2 frame(s) keyed" in text and "2 skipped" in text
    check_layout(out_dir, [f"shot.{n}" for n in range(1001, 1005)])
    assert _stamp(first) == first, "finished frames were rewritten"

    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--frames", "1001-1004")
    assert result.exit_code == 0 and "nothing to do" in text

    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--frames", "1003", "--overwrite")
    assert result.exit_code == 0, text
    after = _stamp(first)
    changed = {p.name for p in first if after[p] != first[p]}
    assert changed == {"shot.1003.exr", "shot.1003.png"} and len([p for p in first if after[p] != first[p]]) == 4

    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--frames", "2000-2010")
    assert result.exit_code != 0 and "no frames in 2000-2010" in text and "1001-1004" in text


# --------------------------------------------------------------------------- errors


def _complete_frame(out_dir: Path, name: str) -> bool:
    """All four outputs of ``name`` exist and decode to full-size images."""
    paths = outputs.output_paths(out_dir, _ref(name), outputs.OutputSettings())
    return all(p.is_file() and frame_io.read_image(p).shape[:2] == (H, W) for p in paths.values())


def _ref(name: str) -> clips.FrameRef:
    return clips.FrameRef(0, 0, name, Path(name), Path(name))


def test_corrupt_frame_mid_clip_keeps_the_frames_before_it_and_a_rerun_resumes(tmp_path, ckpt, model):
    root = make_clip(tmp_path / "Shot_070", "png8", n=6)
    good = (root / "Input" / "shot.1005.png").read_bytes()
    bad = root / "Input" / "shot.1005.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this file was cut off")
    out_dir = root / "Output"
    before = [f"shot.{n}" for n in range(1001, 1005)]

    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float")
    assert result.exit_code == 1, text
    assert str(bad) in text and "cannot read frame" in text
    # frames are committed in order up to the failed one: 1001-1004 complete, nothing of 1005 and 1006
    check_layout(out_dir, before)
    assert all(_complete_frame(out_dir, n) for n in before)
    assert not list(out_dir.rglob("shot.1005.*")) and not list(out_dir.rglob("shot.1006.*"))
    assert not [p for p in out_dir.rglob(".*")], "temporary files left behind"
    _clip, plates = loaded_plates_of(root, [0, 3])
    for name, plate in zip(("shot.1001", "shot.1004"), plates):  # and they are the right frames, keyed right
        _fg_ref, alpha_ref = reference(model, plate, frame.GAMMA_SRGB, 0.0, 1.0)
        np.testing.assert_allclose(read_raw(out_dir / "Matte" / f"{name}.exr"), alpha_ref, atol=1e-5, rtol=0)
    kept = _stamp(sorted(out_dir.rglob("shot.*")))
    assert len(kept) == 16

    # the frame repaired, the same command again: it keys only 1005 and 1006
    bad.write_bytes(good)
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float")
    assert result.exit_code == 0, text
    assert "2 frame(s) keyed" in text and "4 skipped" in text
    check_layout(out_dir, before + ["shot.1005", "shot.1006"])
    assert _stamp(kept) == kept, "frames kept from the failed run were rewritten"
    assert not [p for p in out_dir.rglob(".*")]


def loaded_plates_of(clip_root: Path, positions):
    clip = clips.load_clip(clips.scan(clip_root)[0])
    refs = [clip.frames[i] for i in positions]
    return clip, [stages.read_frame(t).plate for t in stages.iter_tasks(clip, refs)]


def test_count_non_finite_pixels():
    a = np.zeros((8, 9, 4), np.float32)
    assert stages.count_non_finite_pixels(a) == 0
    a[1, 1, 0] = np.nan
    a[2, 2, 3] = np.inf
    a[2, 2, 1] = -np.inf  # same pixel as the inf: counted once
    a[3, 3, 2] = np.inf
    assert stages.count_non_finite_pixels(a) == 3
    huge = np.full((8, 9, 4), 3e38, np.float32)  # finite, though their float32 sum overflows
    assert stages.count_non_finite_pixels(huge) == 0


def test_nan_and_inf_in_an_exr_plate_key_as_zero_with_one_warning(tmp_path, ckpt, model, caplog):
    root = make_clip(tmp_path / "Shot_075", "exr", n=3)
    plate_path = root / "Input" / "shot.1002.exr"
    hint_path = root / "AlphaHint" / "matte_001.exr"
    plate = frame_io.read_image(plate_path)
    plate[10:20, 30:40, :] = np.nan  # a 10 x 10 patch
    plate[50, 80, 1] = np.inf
    hint = frame_io.read_image(hint_path)[..., 0]
    hint[5, 5] = -np.inf
    frame_io.write_image(plate_path, plate, ExrOptions("float"))
    frame_io.write_image(hint_path, hint, ExrOptions("float"))
    _clip, plates = loaded_plates(root)
    damaged = plates[1]
    assert np.isnan(damaged).any(axis=2).sum() == 100 and np.isinf(damaged).sum() == 2  # the files hold it

    with caplog.at_level(logging.WARNING, logger="corridorkey_model"):
        result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float")
    assert result.exit_code == 0, text
    warnings = [r.getMessage() for r in caplog.records if "NaN or infinite" in r.getMessage()]
    assert len(warnings) == 1, warnings  # once, for the damaged frame only
    assert str(plate_path) in warnings[0] and f"102 of {H * W} pixel(s)" in warnings[0]

    out_dir = root / "Output"
    zeroed = np.where(np.isfinite(damaged), damaged, np.float32(0.0)).astype(np.float32)
    fg_ref, alpha_ref = reference(model, zeroed, frame.GAMMA_LINEAR, 0.0, 1.0)
    matte = read_raw(out_dir / "Matte" / "shot.1002.exr")
    fg = read_raw(out_dir / "FG" / "shot.1002.exr")[..., ::-1]
    proc = frame_io.read_image(out_dir / "Processed" / "shot.1002.exr")
    for img in (matte, fg, proc):
        assert np.isfinite(img).all()
    assert 0.0 <= matte.min() and matte.max() <= 1.0
    np.testing.assert_allclose(matte, alpha_ref, atol=1e-5, rtol=0)
    np.testing.assert_allclose(fg, fg_ref, atol=1e-5, rtol=0)


def test_mismatched_counts(tmp_path):
    root = make_clip(tmp_path / "Shot_080", "png8", n=3)
    (root / "AlphaHint" / "matte_002.png").unlink()
    result, text = run_cli(root, "--random-init", "--img-size", S)
    assert result.exit_code == 1
    assert "3 input frame(s)" in text and "2 hint frame(s)" in text and "AlphaHint" in text
    assert not (root / "Output").exists()


def test_missing_hint_folder_is_reported_for_each_clip(tmp_path):
    make_clip(tmp_path / "shots" / "A", "png8", n=1)
    b = make_clip(tmp_path / "shots" / "B", "png8", n=1)
    c = make_clip(tmp_path / "shots" / "C", "png8", n=1)
    for clip in (b, c):
        for p in (clip / "AlphaHint").iterdir():
            p.unlink()
        (clip / "AlphaHint").rmdir()
    result, text = run_cli(tmp_path / "shots", "--random-init", "--img-size", S)
    assert result.exit_code == 1
    assert "2 of 3 clip(s) cannot be keyed" in text
    assert "clip B has no alpha hint" in text and "clip C has no alpha hint" in text
    assert str(b / "AlphaHint") in text


def test_plate_and_hint_sizes_must_match(tmp_path):
    root = make_clip(tmp_path / "Shot_090", "png8", n=1)
    cv2.imwrite(str(root / "AlphaHint" / "matte_000.png"), np.zeros((32, 32), np.uint8))
    result, text = run_cli(root, "--random-init", "--img-size", S)
    assert result.exit_code == 1 and "96x64" in text and "32x32" in text


def test_unwritable_output_fails_before_keying(tmp_path):
    root = make_clip(tmp_path / "Shot_100", "png8", n=1)
    (root / "Output").mkdir()
    (root / "Output" / "Matte").write_text("a file where the Matte folder should be")
    result, text = run_cli(root, "--random-init", "--img-size", S)
    assert result.exit_code == 1
    assert "not writable" in text and str(root / "Output" / "Matte") in text
    assert RANDOM_INIT_WARNING not in text, "the error must come before the model is built"


def test_bad_arguments_are_usage_errors(tmp_path):
    root = make_clip(tmp_path / "Shot_110", "png8", n=1)
    for args, needle in [(["--despill", "11"], "11"), (["--refiner", "-0.5"], "-0.5"),
                         (["--frames", "1050-1001"], "before the first"), (["--gamma", "log"], "log"),
                         (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "bogus"], "")]:
        result, text = run_cli(root, "--random-init", *args)
        assert result.exit_code == 2, (args, text)
        assert needle in text
    result, text = run_cli(tmp_path / "Shot_110" / "Input" / "shot.1001.png", "--random-init")
    assert result.exit_code == 1 and "not a video" in text


def test_help_shows_knob_ranges_and_defaults_from_the_spec():
    from corridorkey_model.keying.knobs import KNOBS_BY_NAME

    result = CliRunner().invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for name in ("despill_strength", "refiner_strength"):
        k = KNOBS_BY_NAME[name]
        assert f"{k.minimum:g}<=x<={k.maximum:g}" in text.replace(".0", "")
        assert " ".join(k.tooltip.split()[:6]) in text
    assert "auto: linear for EXR plates" in text
    for c in frame_io.EXR_COMPRESSIONS:
        assert c in text


def test_video_path_with_hint_option_and_frame_names(tmp_path):
    plates = [green_screen_plate(H, W, seed=i) for i in range(2)]
    video = tmp_path / "take3.mp4"
    frame_io.write_video(video, [p[..., :3] for p in plates])
    with pytest.raises(clips.ClipError, match="no alpha hint"):
        clips.load_clips(clips.scan(video))
    hints = tmp_path / "hints"
    hints.mkdir()
    for i, p in enumerate(plates):
        frame_io.write_image(hints / f"m{i}.png", p[..., 3])
    (clip,) = clips.load_clips(clips.scan(video, hint=hints))
    assert clip.output_dir == tmp_path / "take3_Output"
    assert [(r.number, r.name) for r in clip.frames] == [(1, "take3.0001"), (2, "take3.0002")]
    assert not clip.is_linear
    loaded = [stages.read_frame(t) for t in stages.iter_tasks(clip, clip.frames[1:])]
    assert len(loaded) == 1 and loaded[0].plate.shape == (H, W, 4)
    np.testing.assert_array_equal(loaded[0].plate[..., 3], frame_io.read_image(hints / "m1.png")[..., 0])


class _SlowFirstFrameStandIn(torch.nn.Module):
    """GreenFormer's interface; frame 0 takes longest (NOT for parity: only ordering is tested here)."""

    def __init__(self, hint_means, finished):
        super().__init__()
        self.img_size = 64
        self.hint_means = hint_means
        self.finished = finished

    def forward(self, x):
        m = float(x[:, 3].mean())
        i = min(range(len(self.hint_means)), key=lambda k: abs(self.hint_means[k] - m))
        time.sleep(0.4 if i == 0 else 0.01)
        self.finished.append(i)
        return x[:, 3:4] * 4 - 2, x[:, :3], torch.zeros_like(x)


def test_key_clip_commits_in_order_when_inference_finishes_out_of_order(tmp_path):
    root = make_clip(tmp_path / "Shot_120", "png8", n=8)
    clip = clips.load_clip(clips.scan(root)[0])
    out = outputs.OutputSettings(exr=ExrOptions("half", "none"))
    outputs.prepare_output(clip, out)
    s = stages.KeySettings()
    hint_means = [float(stages.preprocess_frame(stages.read_frame(t), 64, s).x[:, 3].mean())
                  for t in stages.iter_tasks(clip, clip.frames)]
    assert len(set(hint_means)) == 8  # each frame can be told apart
    finished = []
    workers = [stages.Worker(_SlowFirstFrameStandIn(hint_means, finished), torch.device("cpu")) for _ in range(2)]
    committed = []
    n = stages.key_clip(clip, clip.frames, workers, 64, s, out, io_threads=2,
                          on_frame=lambda w: committed.append((w.ref.position, all(f.exists() for _t, f in w.files))))
    assert n == 8
    assert sorted(finished) == list(range(8)) and finished[0] != 0, finished  # inference finished out of order
    assert [c[0] for c in committed] == list(range(8)) and all(c[1] for c in committed)  # written in order
