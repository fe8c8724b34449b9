"""``corridorkey compare A B``: frames matched by number, per-channel max abs error, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from click.testing import CliRunner

from corridorkey_model.pipeline.cli import main
from corridorkey_model.pipeline.compare import DEFAULT_TOLERANCE, RUN_MODES, parse_channels


def write_exr(path: Path, img: np.ndarray) -> None:
    """Float RGBA EXR written with OpenImageIO (not the code under test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    spec = oiio.ImageSpec(img.shape[1], img.shape[0], img.shape[2], oiio.FLOAT)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(np.ascontiguousarray(img, np.float32))
    out.close()


def frames(folder: Path, numbers, size=(6, 5), seed=0, prefix="shot") -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for n in numbers:
        img = rng.random((size[1], size[0], 4), dtype=np.float32)
        write_exr(folder / f"{prefix}.{n:04d}.exr", img)
        out[n] = img
    return out


def run(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_identical_folders_pass_and_count(tmp_path):
    imgs = frames(tmp_path / "a", [1001, 1002, 1003])
    for n, img in imgs.items():  # other names, same numbers
        write_exr(tmp_path / "b" / f"key_v2_{n}.exr", img)
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert "3 frame(s) compared" in r.output


def test_perturbed_frame_fails_naming_it_and_its_error(tmp_path):
    imgs = frames(tmp_path / "a", [1, 2, 3, 4])
    for n, img in imgs.items():
        img = img.copy()
        if n == 3:
            img[2, 1, 3] += 1e-3  # alpha of one pixel
        if n == 2:
            img[0, 0, 0] += 2e-4  # smaller error elsewhere: frame 3 is the worst
        write_exr(tmp_path / "b" / f"shot.{n:04d}.exr", img)
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1, r.output
    assert "worst: frame 3" in r.output
    err = float(r.output.split("max abs error ")[-1].split()[0])
    assert err == pytest.approx(1e-3, rel=1e-3)  # float32 rounding of the written value
    assert "2 of 4 frame(s)" in r.output
    # Only the channels asked for: frame 3's error is in alpha, frame 2's in red.
    r = run(tmp_path / "a", tmp_path / "b", "--channels", "rgb")
    assert r.exit_code == 1 and "worst: frame 2" in r.output
    r = run(tmp_path / "a", tmp_path / "b", "--channels", "gb")
    assert r.exit_code == 0, r.output
    r = run(tmp_path / "a", tmp_path / "b", "--tolerance", "2e-3")
    assert r.exit_code == 0, r.output


def test_mismatched_counts_are_refused(tmp_path):
    frames(tmp_path / "a", [1, 2, 3])
    frames(tmp_path / "b", [1, 2])
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1
    assert "3 frame(s)" in r.output and "only in" in r.output and "3" in r.output.split("only in")[1]


def test_same_count_other_numbers_are_refused(tmp_path):
    frames(tmp_path / "a", [1, 2])
    frames(tmp_path / "b", [1, 5])
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1 and "only in" in r.output and "5" in r.output


def test_mismatched_sizes_are_refused(tmp_path):
    frames(tmp_path / "a", [1, 2], size=(6, 5))
    frames(tmp_path / "b", [1, 2], size=(5, 6))
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1 and "formats (display windows) differ" in r.output and "frame 1" in r.output


def test_nan_in_one_render_is_an_error_not_a_pass(tmp_path):
    imgs = frames(tmp_path / "a", [1])
    img = imgs[1].copy()
    img[0, 0, 1] = np.nan
    write_exr(tmp_path / "b" / "shot.0001.exr", img)
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1 and "inf" in r.output


def test_file_without_frame_number_is_refused(tmp_path):
    frames(tmp_path / "a", [1])
    write_exr(tmp_path / "b" / "final.exr", np.zeros((5, 6, 4), np.float32))
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 1 and "final.exr" in r.output and "frame number" in r.output


def test_bad_channels_is_a_usage_error(tmp_path):
    frames(tmp_path / "a", [1])
    frames(tmp_path / "b", [1])
    r = run(tmp_path / "a", tmp_path / "b", "--channels", "rgbx")
    assert r.exit_code == 2


def test_parse_channels():
    assert parse_channels("rgba") == (0, 1, 2, 3)
    assert parse_channels("a") == (3,)
    assert parse_channels("b,r") == (0, 2)
    with pytest.raises(ValueError):
        parse_channels("rr")


def test_default_tolerance_is_the_cpu_fp32_figure():
    assert DEFAULT_TOLERANCE == RUN_MODES["cpu"].tolerance
    assert RUN_MODES["cpu"].tolerance <= RUN_MODES["gpu"].tolerance <= RUN_MODES["gpu-fp16"].tolerance


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_non_finite_or_negative_tolerance_is_a_usage_error(tmp_path, value):
    """Issue #31 defect 13: --tolerance nan marked every frame OVER with error 0 and exited 1."""
    frames(tmp_path / "a", [1])
    frames(tmp_path / "b", [1])
    r = run(tmp_path / "a", tmp_path / "b", "--tolerance", value)
    assert r.exit_code == 2 and value in r.output, r.output


def test_frames_of_one_format_with_other_data_windows_are_compared_over_the_format(tmp_path):
    """Issue #31 defect 18: the same 30x20 format with another data window was called "sizes differ"."""
    img = np.zeros((20, 30, 4), np.float32)
    img[2:12, 3:23] = 0.5
    write_exr(tmp_path / "a" / "s.0001.exr", img)
    (tmp_path / "b").mkdir()
    spec = oiio.ImageSpec(20, 10, 4, oiio.FLOAT)  # only the non-zero pixels stored, in a 30x20 format
    spec.x, spec.y, spec.full_x, spec.full_y, spec.full_width, spec.full_height = 3, 2, 0, 0, 30, 20
    out = oiio.ImageOutput.create(str(tmp_path / "b" / "s.0001.exr"))
    assert out.open(str(tmp_path / "b" / "s.0001.exr"), spec) and out.write_image(img[2:12, 3:23])
    out.close()
    r = run(tmp_path / "a", tmp_path / "b")
    assert r.exit_code == 0, r.output
    frames(tmp_path / "c", [1], size=(35, 25))
    r = run(tmp_path / "a", tmp_path / "c")
    assert r.exit_code == 1 and "formats (display windows) differ" in r.output and "30x20" in r.output, r.output
