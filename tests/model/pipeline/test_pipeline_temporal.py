"""``corridorkey run --temporal``: the formula on the .pt's outputs, off = today, chunks = whole, one forward a frame.

A random-weight network at S=64 (NOT a keyer), loaded through the real loader; clips are
five 48x80 float EXR plates of one still subject with per-frame noise (so the filter has
something to average), keyed as sRGB.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from corridorkey_model.keying import frame, temporal
from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.pipeline import clips, frame_io, outputs, settings_record, stages
from corridorkey_model.pipeline.cli import main
from corridorkey_model.pipeline.frame_io import ExrOptions
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor, save_checkpoint

S = 64
H, W = 48, 80
FIRST = 1001
OUT = outputs.OutputSettings(exr=ExrOptions("float", "none"))
FOLDERS = ("Matte", "FG", "Processed")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return save_checkpoint(make_random_model(S, seed=5), tmp_path_factory.mktemp("ckpt64") / "synthetic_64.pth")


@pytest.fixture(scope="module")
def model(ckpt):
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    m, _ = load_model(ckpt, img_size=S)
    return m


def make_clip(root: Path, numbers=range(FIRST, FIRST + 5), jump: bool = False) -> Path:
    """Float EXR plates (sRGB values) and hints; ``jump``: every other frame's RGB raised by 0.5 (all 'moved')."""
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    base = green_screen_plate(H, W, seed=2)
    rng = np.random.default_rng(7)
    for i, n in enumerate(numbers):
        p = base.copy()
        p[..., :3] += rng.normal(0.0, 0.004, (H, W, 3)).astype(np.float32)
        if jump and i % 2:
            p[..., :3] += 0.5
        frame_io.write_image(root / "Input" / f"shot.{n}.exr", p[..., :3], ExrOptions("float"))
        frame_io.write_image(root / "AlphaHint" / f"hint.{n}.exr", p[..., 3], ExrOptions("float"))
    return root


def load(root: Path, output: Path = None) -> clips.Clip:
    return clips.load_clip(clips.scan(root, output=output)[0])


def key(clip, refs, model, strength, out=OUT):
    """stages.key_clip with a forward hook on the real network: (frames written, forwards run)."""
    calls = []
    handle = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        outputs.prepare_output(clip, out)
        s = stages.KeySettings(gamma_input=frame.GAMMA_SRGB, temporal=strength)
        n = stages.key_clip(clip, refs, [stages.Worker(model, torch.device("cpu"))], S, s, out)
    finally:
        handle.remove()
    return n, len(calls)


def read_outputs(out_dir: Path, numbers):
    return {(f, n): frame_io.read_image(out_dir / f / f"shot.{n}.exr") for f in FOLDERS for n in numbers}


def test_off_is_today_and_a_neighbour_that_moved_everywhere_changes_nothing(tmp_path, model):
    # --temporal 0: the run without the option, bit for bit (the same path: the filter is never called)
    root = make_clip(tmp_path / "Shot", jump=True)
    numbers = range(FIRST, FIRST + 5)
    n, forwards = key(load(root), load(root).frames, model, 0.0)
    assert (n, forwards) == (5, 5)
    off = read_outputs(root / "Output", numbers)
    # every neighbour's plate differs by 0.5 everywhere: weight 0, so (O + 0 + 0) / 1 is O, bit for bit;
    # this proves that the temporal path's split postprocess equals the plain one
    clip = load(root, tmp_path / "temporal")
    n, forwards = key(clip, clip.frames, model, 1.0)
    assert (n, forwards) == (5, 5)
    on = read_outputs(tmp_path / "temporal", numbers)
    assert all(np.array_equal(on[k], off[k]) for k in off)


def test_output_is_the_formula_on_the_pt_outputs_first_and_last_frames_included(tmp_path, model):
    root = make_clip(tmp_path / "Shot")
    clip = load(root)
    n, forwards = key(clip, clip.frames, model, 0.8)
    assert (n, forwards) == (5, 5)  # the network ran once per frame: neighbours' outputs were kept
    plates = [stages.read_frame(t).plate for t in stages.iter_tasks(clip, clip.frames)]
    raw = [frame.key_frame(model, plate_tensor(p))[0].permute(1, 2, 0).numpy() for p in plates]
    changed = 0
    for t, ref in enumerate(clip.frames):
        prev = (raw[t - 1], plates[t - 1][..., :3]) if t > 0 else (None, None)  # the first frame: itself
        nxt = (raw[t + 1], plates[t + 1][..., :3]) if t + 1 < len(raw) else (None, None)  # the last: itself
        want = temporal.smooth_np(raw[t], plates[t][..., :3], prev[0], prev[1], nxt[0], nxt[1], 0.8)
        matte = frame_io.read_image(root / "Output" / "Matte" / f"{ref.name}.exr")
        fg = frame_io.read_image(root / "Output" / "FG" / f"{ref.name}.exr")
        np.testing.assert_allclose(matte[..., 0], want[..., 3], atol=1e-5, rtol=0)
        np.testing.assert_allclose(fg, want[..., :3], atol=1e-5, rtol=0)
        changed += float(np.abs(want[..., 3] - raw[t][..., 3]).max()) > 1e-3
    assert changed == 5  # the filter did act on every frame


def test_chunks_equal_the_whole_clip_and_each_chunk_keys_one_neighbour_more(tmp_path, model):
    root = make_clip(tmp_path / "Shot")
    whole = load(root, tmp_path / "whole")
    assert key(whole, whole.frames, model, 1.0) == (5, 5)
    chunked = load(root, tmp_path / "chunked")
    first = outputs.select_frames(chunked, (1001, 1002), OUT).todo
    second = outputs.select_frames(chunked, (1003, 1005), OUT).todo
    assert key(chunked, first, model, 1.0) == (2, 3)  # 1003 keyed for 1002, not written
    assert not (tmp_path / "chunked" / "Matte" / "shot.1003.exr").exists()
    assert key(chunked, second, model, 1.0) == (3, 4)  # 1002 keyed for 1003
    numbers = range(FIRST, FIRST + 5)
    a, b = read_outputs(tmp_path / "whole", numbers), read_outputs(tmp_path / "chunked", numbers)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_rekeys_the_neighbours_and_writes_only_the_missing_frame(tmp_path, model):
    root = make_clip(tmp_path / "Shot")
    clip = load(root)
    key(clip, clip.frames, model, 1.0)
    before = read_outputs(root / "Output", [1003])
    kept = (root / "Output" / "Matte" / "shot.1002.exr").stat().st_mtime_ns
    for folder in FOLDERS + ("Comp",):
        for p in (root / "Output" / folder).glob("shot.1003.*"):
            p.unlink()
    todo = outputs.select_frames(clip, None, OUT).todo
    assert [r.number for r in todo] == [1003]
    assert key(clip, todo, model, 1.0) == (1, 3)
    after = read_outputs(root / "Output", [1003])
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert (root / "Output" / "Matte" / "shot.1002.exr").stat().st_mtime_ns == kept


def test_neighbours_follow_frame_numbers_and_a_gap_is_a_missing_neighbour(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002, 1004, 1005))
    clip = load(root)
    by = {r.number: r for r in clip.frames}
    assert stages.temporal_neighbours(clip, by[1001]) == (None, by[1002])
    assert stages.temporal_neighbours(clip, by[1002]) == (by[1001], None)  # 1003 is missing: the frame stands in
    assert stages.temporal_neighbours(clip, by[1005]) == (by[1004], None)
    assert [r.number for r in stages.frames_to_infer(clip, [by[1004]])] == [1004, 1005]
    assert [r.number for r in stages.frames_to_infer(clip, [by[1002], by[1004]])] == [1001, 1002, 1004, 1005]


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_cli_records_the_strength_and_a_resume_with_another_is_refused(tmp_path, ckpt):
    root = make_clip(tmp_path / "Shot", numbers=range(FIRST, FIRST + 3))
    base = [root, "--checkpoint", ckpt, "--img-size", S, "--gamma", "srgb", "--exr-type", "float"]
    result, text = run_cli(*base, "--temporal", 2)
    assert result.exit_code == 2 and "--temporal" in text
    result, text = run_cli(*base, "--frames", "1001-1002")
    assert result.exit_code == 0, text
    assert "temporal" not in settings_record.read(root / "Output")  # off: the record as before the option
    result, text = run_cli(*base, "--temporal", 0.5)
    assert result.exit_code == 1 and "temporal" in text and "--overwrite" in text
    shutil.rmtree(root / "Output")
    result, text = run_cli(*base, "--temporal", 0.5, "--frames", "1001-1002")
    assert result.exit_code == 0, text
    assert settings_record.read(root / "Output")["temporal"] == 0.5
    result, text = run_cli(*base, "--temporal", 0.5)  # the resume: only 1003, with 1002 keyed again
    assert result.exit_code == 0, text
    assert "1 frame(s) keyed" in text and (root / "Output" / "Matte" / "shot.1003.exr").exists()


def test_a_corrupt_frame_stops_the_run_there_and_the_frame_before_it_waits(tmp_path, model):
    root = make_clip(tmp_path / "Shot")
    (root / "Input" / "shot.1004.exr").write_bytes(b"not an exr")
    clip = load(root)
    with pytest.raises(stages.StageError) as err:
        key(clip, clip.frames, model, 1.0)
    assert "shot.1004.exr" in str(err.value)
    written = sorted(p.name for p in (root / "Output" / "Matte").iterdir())
    assert written == ["shot.1001.exr", "shot.1002.exr"]  # 1003 needs 1004; nothing half-written
