"""``corridorkey run`` and ``farm-job`` refuse bad input up front and never lose or mix frames (issue #23).

Duplicate frame names, every hint's size, NaN knob values, --img-size, the checkpoint of
--screen blue, one set of rules for run and farm-job, the settings record of a clip's
output, stale temporary files and no empty folders after a failed run. The lock itself is
tested in test_lock.py.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from corridorkey_model.pipeline import frame_io, settings_record
from corridorkey_model.pipeline.cli import main
from corridorkey_model.testing import green_screen_plate, make_random_model, save_checkpoint

S = 64
H, W = 40, 56


def make_clip(root: Path, numbers=(1001, 1002), ext: str = ".png", hint_sizes=None, size=(H, W)) -> Path:
    """Input/shot.NNNN<ext> plates and AlphaHint/ hints (8-bit); ``hint_sizes`` overrides a hint's (h, w)."""
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    for i, n in enumerate(numbers):
        p = green_screen_plate(*size, seed=i)
        cv2.imwrite(str(root / "Input" / f"shot.{n}{ext}"), frame_io.to_uint8(p[..., 2::-1]))
        hint = frame_io.to_uint8(p[..., 3])
        if hint_sizes and i in hint_sizes:
            hint = cv2.resize(hint, hint_sizes[i][::-1])
        cv2.imwrite(str(root / "AlphaHint" / f"hint_{i:03d}.png"), hint)
    return root


def run_cli(*args):
    result = CliRunner().invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def farm_job(*args):
    result = CliRunner().invoke(main, ["farm-job", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def files_under(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


QUICK = ("--random-init", "--img-size", S, "--device", "cpu", "--io-threads", 1)


# --------------------------------------------------------------------------- refused up front (no model, nothing written)


@pytest.mark.parametrize("first, second", [("shot.1001.jpg", "shot.1001.jpeg"), ("shot.1001.tif", "shot.1001.tiff")])
def test_two_files_with_one_frame_name_are_an_error_naming_both(tmp_path, first, second):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002), ext=Path(first).suffix)
    os.replace(root / "Input" / "shot.1002" f"{Path(first).suffix}", root / "Input" / second)
    cv2.imwrite(str(root / "AlphaHint" / "hint_002.png"), np.zeros((H, W), np.uint8))  # 3 plates, 3 hints
    cv2.imwrite(str(root / "Input" / "shot.1003" f"{Path(first).suffix}"), np.zeros((H, W, 3), np.uint8))
    result, text = run_cli(root, *QUICK)
    assert result.exit_code == 1, text
    assert first in text and second in text
    assert not (root / "Output").exists()


def test_two_files_with_one_frame_number_are_an_error(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002))
    os.replace(root / "Input" / "shot.1002.png", root / "Input" / "take.1001.png")
    result, text = run_cli(root, *QUICK)
    assert result.exit_code == 1 and "shot.1001.png" in text and "take.1001.png" in text, text


def test_every_hint_size_is_checked_before_keying(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002, 1003), hint_sizes={2: (H, W + 8)})
    result, text = run_cli(root, *QUICK)
    assert result.exit_code == 1, text
    assert "shot.1003.png" in text and f"{W}x{H}" in text and f"{W + 8}x{H}" in text
    assert not (root / "Output").exists(), "nothing is keyed when a later hint is the wrong size"


def test_image_size_reads_the_header_of_every_format(tmp_path):
    oiio = pytest.importorskip("OpenImageIO", reason="OpenImageIO is the oracle for the header sizes")
    rng = np.random.default_rng(0)
    for ext, dtype in ((".png", np.uint8), (".png", np.uint16), (".jpg", np.uint8), (".jpeg", np.uint8),
                       (".tif", np.uint8), (".tiff", np.uint16), (".exr", np.float32)):
        for shape in ((37, 53, 3), (20, 31), (9, 300, 4)):
            if ext in (".jpg", ".jpeg") and len(shape) == 3 and shape[2] == 4:
                continue
            path = tmp_path / f"x{len(shape)}{shape[-1]}{ext}"
            assert cv2.imwrite(str(path), (rng.random(shape) * 200).astype(dtype))
            spec = oiio.ImageInput.open(str(path)).spec()
            assert frame_io.image_size(path) == (spec.width, spec.height) == (shape[1], shape[0]), path
    (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    assert frame_io.image_size(tmp_path / "junk.png") is None
    assert frame_io.image_size(tmp_path / "missing.exr") is None


@pytest.mark.parametrize("option", ["--despill", "--refiner"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_knob_values_are_usage_errors(tmp_path, option, value):
    root = make_clip(tmp_path / "Shot")
    result, text = run_cli(root, *QUICK, option, value)
    assert result.exit_code == 2 and value in text and "Traceback" not in text, text
    result, text = farm_job(root, "--output", tmp_path / "job.yaml", "--random-init", option, value)
    assert result.exit_code == 2 and not (tmp_path / "job.yaml").exists(), text


def test_bad_img_size_is_a_usage_error_and_writes_nothing(tmp_path):
    root = make_clip(tmp_path / "Shot")
    for size in ("100", "32"):
        result, text = run_cli(root, "--random-init", "--img-size", size)
        assert result.exit_code == 2 and "32" in text, text
    assert not (root / "Output").exists()


def test_blue_checkpoint_rules_and_farm_job_refuses_what_run_refuses(tmp_path):
    root = make_clip(tmp_path / "Shot")
    weights = tmp_path / "weights.pth"
    with open(weights, "wb") as f:  # passes the cheap file checks (size, not an LFS pointer)
        f.truncate(2 << 20)
    other = tmp_path / "other.safetensors"
    with open(other, "wb") as f:
        f.truncate(2 << 20)
    cases = [
        (["--random-init", "--blue-checkpoint", weights], 2, "not both"),
        (["--random-init", "--checkpoint", weights], 2, "not both"),
        (["--screen", "green", "--blue-checkpoint", weights], 2, "--screen green"),
        (["--screen", "blue", "--checkpoint", weights, "--blue-checkpoint", other], 2, "differ"),
        (["--screen", "blue", "--checkpoint", tmp_path / "missing.pth"], 2, "missing.pth"),
        (["--screen", "auto", "--blue-checkpoint", tmp_path / "missing.pth"], 2, "missing.pth"),
        (["--img-size", "100", "--random-init"], 2, "multiple of 32"),
    ]
    for args, code, needle in cases:
        result, text = run_cli(root, *args)
        assert result.exit_code == code and needle in text, (args, text)
        job = tmp_path / "job.yaml"
        result, text = farm_job(root, "--output", job, *args)
        assert result.exit_code == code and needle in text, ("farm-job", args, text)
        assert not job.exists()
    tiny = tmp_path / "tiny.pth"
    tiny.write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    for command in (run_cli, lambda *a: farm_job(*a[:1], "--output", tmp_path / "job.yaml", *a[1:])):
        result, text = command(root, "--screen", "blue", "--checkpoint", tiny)
        assert result.exit_code == 1 and "Git LFS pointer" in text, text
    assert not (root / "Output").exists()


# --------------------------------------------------------------------------- keying (random network at S = 64)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two random-weight checkpoints: green.pth (seed 0) and a 'blue' one (seed 1) in a fake Hugging Face cache."""
    folder = tmp_path_factory.mktemp("weights")
    green = save_checkpoint(make_random_model(S, seed=0), folder / "green.pth")
    snapshot = folder / "hub" / "models--nikopueringer--CorridorKeyBlue_1.0" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    from safetensors.torch import save_file

    save_file(make_random_model(S, seed=1).state_dict(), str(snapshot / "CorridorKeyBlue_1.0.safetensors"))
    return green, folder / "hub"


def test_screen_blue_keys_with_the_given_checkpoint_and_logs_one_verdict(tmp_path, checkpoints, monkeypatch, caplog):
    import huggingface_hub.constants

    green, hub = checkpoints
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))  # read at each call
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    root = make_clip(tmp_path / "Shot", numbers=(1001,))
    caplog.set_level(logging.INFO, logger="corridorkey_model")
    # the cached released blue file: one verdict, no contradiction
    result, text = run_cli(root, "--screen", "blue", "--img-size", S, "--output", tmp_path / "cached")
    assert result.exit_code == 0, text
    verdicts = [r.getMessage() for r in caplog.records if "-screen model:" in r.getMessage()]
    assert len(verdicts) == 1 and "CorridorKeyBlue_1.0.safetensors" in verdicts[0], verdicts
    assert "released CorridorKeyBlue_1.0.safetensors" in verdicts[0] and "not the released" not in verdicts[0]
    caplog.clear()
    # --checkpoint X with --screen blue: X keys the blue clip, not the cached file
    result, text = run_cli(root, "--screen", "blue", "--checkpoint", green, "--img-size", S,
                           "--output", tmp_path / "given")
    assert result.exit_code == 0, text
    verdicts = [r.getMessage() for r in caplog.records if "-screen model:" in r.getMessage()]
    assert len(verdicts) == 1 and verdicts[0].startswith(f"blue-screen model: {green}"), verdicts
    a = frame_io.read_image(tmp_path / "cached" / "Matte" / "shot.1001.exr")
    b = frame_io.read_image(tmp_path / "given" / "Matte" / "shot.1001.exr")
    assert not np.array_equal(a, b), "the two weights must give two mattes"


@pytest.mark.slow
def test_settings_are_recorded_and_a_resume_with_other_settings_is_refused(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002))
    out = root / "Output"
    result, text = run_cli(root, *QUICK, "--despill", 0, "--frames", "1001")
    assert result.exit_code == 0, text
    recorded = json.loads((out / settings_record.FILENAME).read_text())["settings"]
    assert recorded["despill_strength"] == 0 and recorded["weights"] == "random-init" and recorded["img_size"] == S
    before = files_under(out)
    result, text = run_cli(root, *QUICK, "--despill", 10, "--frames", "1002")
    assert result.exit_code == 1 and "despill_strength: 0.0 -> 10.0" in text and "--overwrite" in text, text
    assert files_under(out) == before, "a refused resume writes nothing"
    result, text = run_cli(root, *QUICK, "--despill", 0, "--frames", "1002")  # the same settings resume
    assert result.exit_code == 0, text
    result, text = run_cli(root, *QUICK, "--despill", 10, "--overwrite")
    assert result.exit_code == 0, text
    assert json.loads((out / settings_record.FILENAME).read_text())["settings"]["despill_strength"] == 10


@pytest.mark.slow
def test_a_run_sweeps_stale_temporaries_of_its_own_frames_only(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002))
    matte = root / "Output" / "Matte"
    matte.mkdir(parents=True)
    ours = matte / ".shot.1001.tmp-0123abcd.exr"  # a partial frame of a killed run (SIGKILL)
    theirs = matte / ".shot.1002.tmp-89abcdef.exr"  # a frame outside --frames: maybe a live writer's
    unrelated = matte / ".notes.tmp-01234567.txt"
    for p in (ours, theirs, unrelated):
        p.write_bytes(b"partial")
    result, text = run_cli(root, *QUICK, "--frames", "1001")
    assert result.exit_code == 0, text
    assert not ours.exists() and theirs.exists() and unrelated.exists()
    assert not (root / "Output" / ".corridorkey-locks").exists(), "the lock is released"


@pytest.mark.slow
def test_a_run_that_fails_before_writing_a_frame_leaves_no_empty_folders(tmp_path):
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1002))
    (root / "Input" / "shot.1002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)  # corrupt, not the first
    result, text = run_cli(root, *QUICK, "--frames", "1002")
    assert result.exit_code == 1 and "shot.1002.png" in text, text
    assert not (root / "Output").exists(), files_under(root / "Output")
    (tmp_path / "Shot2").mkdir()
    root2 = make_clip(tmp_path / "Shot2" / "Clip", numbers=(1001, 1002))
    (root2 / "Output" / "Matte").mkdir(parents=True)  # an existing folder stays
    (root2 / "Input" / "shot.1002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    result, text = run_cli(root2, *QUICK, "--frames", "1002")
    assert result.exit_code == 1
    assert files_under(root2 / "Output") == ["Matte"]


@pytest.mark.slow
def test_a_full_disk_is_reported_as_full(tmp_path, small_disk):
    root = make_clip(tmp_path / "Shot", numbers=(1001,), size=(300, 400))
    out = small_disk / "keyed"
    result, text = run_cli(root, *QUICK, "--output", out, "--exr-compression", "no")
    assert result.exit_code == 1, text
    assert "is full" in text and "shot.1001" in text, text
    assert "writable" not in text
    assert not [p for p in out.rglob("*") if p.is_file()], "no partial frame, no temporary file, no record"


@pytest.mark.parametrize("hint", ["files", "auto"])
def test_a_broken_link_stops_the_run_naming_it(tmp_path, hint):
    """Issue #31 defect 5: a dangling shot.1002.png was skipped without a word (exit 0 with --hint auto)."""
    root = make_clip(tmp_path / "Shot", numbers=(1001, 1003))
    (root / "Input" / "shot.1002.png").symlink_to(tmp_path / "gone.png")
    cv2.imwrite(str(root / "AlphaHint" / "hint_009.png"), np.zeros((H, W), np.uint8))
    args = ("--hint", "auto") if hint == "auto" else ()
    result, text = run_cli(root, *QUICK, *args)
    assert result.exit_code == 1, text
    assert "shot.1002.png" in text and "broken" in text and str(tmp_path / "gone.png") in text
    assert not (root / "Output").exists()
