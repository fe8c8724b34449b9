"""Frame reading/writing: formats, bit depths, channel order, EXR flags, atomic writes, video."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.frame_io import ExrOptions, FrameReadError, FrameWriteError, cv2


def _image(h=20, w=30, c=3, seed=0):
    img = np.random.default_rng(seed).random((h, w, c)).astype(np.float32)
    img[0, 0, :3] = [1.0, 0.0, 0.0]  # a pure red pixel proves the channel order
    return img


def _exr_header(path):
    """(compression code, pixel type of the first channel) from an EXR header."""
    data = path.read_bytes()
    i = data.index(b"compression\x00compression\x00") + len(b"compression\x00compression\x00")
    compression = data[i + 4]
    j = data.index(b"channels\x00chlist\x00") + len(b"channels\x00chlist\x00") + 4
    name_end = data.index(b"\x00", j)
    (pixel_type,) = struct.unpack("<i", data[name_end + 1:name_end + 5])
    return compression, pixel_type  # pixel type: 1 half, 2 float


@pytest.mark.parametrize("ext,step", [(".png", 1 / 65535), (".tif", 1 / 65535), (".jpg", None)])
def test_integer_formats_round_trip_as_float_rgb(tmp_path, ext, step):
    img = _image()
    path = tmp_path / f"f{ext}"
    frame_io.write_image(path, img)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    back = frame_io.read_image(path)
    assert back.dtype == np.float32 and back.shape == img.shape
    if step is not None:
        assert raw.dtype == np.uint16
        assert np.abs(back - img).max() <= step / 2 + 1e-7
    else:
        assert raw.dtype == np.uint8
        flat = np.zeros((16, 32, 3), np.float32)
        flat[:, :16, 0] = 1.0  # red left half, green right half
        flat[:, 16:, 1] = 1.0
        frame_io.write_image(path, flat)
        back = frame_io.read_image(path)
        assert back[4:12, 2:6, 0].min() > 0.9 and back[4:12, 2:6, 1].max() < 0.1
        assert back[4:12, 26:30, 1].min() > 0.9 and back[4:12, 26:30, 0].max() < 0.1


def test_8bit_png_reads_as_value_over_255(tmp_path):
    path = tmp_path / "a.png"
    px = np.array([[[0, 128, 255]]], np.uint8)  # RGB
    cv2.imwrite(str(path), px[..., ::-1])
    np.testing.assert_allclose(frame_io.read_image(path)[0, 0], [0.0, 128 / 255, 1.0], atol=1e-7)


@pytest.mark.parametrize("pixel_type,code,tol", [("half", 1, 2 ** -11), ("float", 2, 0.0)])
def test_exr_round_trip_keeps_floats_out_of_range(tmp_path, pixel_type, code, tol):
    img = _image(c=4) * 6.0 - 1.0  # values in [-1, 5]
    path = tmp_path / "f.exr"
    frame_io.write_image(path, img, ExrOptions(pixel_type, "zip"))
    back = frame_io.read_image(path)
    assert back.shape == img.shape and back.dtype == np.float32
    assert np.all(np.abs(back - img) <= np.abs(img) * tol + 1e-7)
    assert _exr_header(path) == (cv2.IMWRITE_EXR_COMPRESSION_ZIP, code)


def test_every_exr_compression_flag_reaches_the_file(tmp_path):
    yy, xx = np.mgrid[0:16, 0:16].astype(np.float32) / 15.0
    img = np.stack([yy, xx, (yy + xx) / 2], -1)  # smooth, so the lossy ones (b44, dwa) stay close
    assert {"no", "rle", "zip", "piz", "pxr24", "b44"} <= set(frame_io.EXR_COMPRESSIONS)
    for name, flag in frame_io.EXR_COMPRESSIONS.items():
        path = tmp_path / f"{name}.exr"
        frame_io.write_image(path, img, ExrOptions("half", name))
        assert _exr_header(path)[0] == flag, name
        err = np.abs(frame_io.read_image(path) - img).max()
        lossless = name in ("no", "rle", "zips", "zip", "piz")
        assert err <= (2 ** -11 if lossless else 0.05), name


def test_single_channel_exr(tmp_path):
    a = np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)
    frame_io.write_image(tmp_path / "m.exr", a, ExrOptions("float"))
    back = frame_io.read_image(tmp_path / "m.exr")
    assert back.shape == (6, 10, 1)
    np.testing.assert_array_equal(back[..., 0], a)


def test_hint_channel_rules():
    grey = np.full((2, 2, 1), 0.3, np.float32)
    rgb = np.stack([np.full((2, 2), v, np.float32) for v in (0.1, 0.2, 0.3)], -1)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 0.9, np.float32)], -1)
    assert np.all(frame_io.hint_channel(grey) == 0.3)
    assert np.all(frame_io.hint_channel(rgb) == np.float32(0.1))  # red
    assert np.all(frame_io.hint_channel(rgba) == np.float32(0.9))  # alpha
    assert frame_io.plate_rgb(grey).shape == (2, 2, 3)
    assert frame_io.plate_rgb(rgba).shape == (2, 2, 3)


def test_unreadable_file_names_the_path(tmp_path):
    bad = tmp_path / "0002.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(FrameReadError, match="0002.png"):
        frame_io.read_image(bad)
    with pytest.raises(FrameReadError, match="not found"):
        frame_io.read_image(tmp_path / "missing.png")


def test_atomic_write_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "f.png"
    frame_io.write_image(path, np.zeros((4, 4, 3), np.float32))
    frame_io.write_image(path, np.ones((4, 4, 3), np.float32))
    assert frame_io.read_image(path).min() == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


def test_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(FrameWriteError):
        frame_io.write_image(tmp_path / "blocker" / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(FrameWriteError, match="not writable"):
        frame_io.check_writable(tmp_path / "blocker" / "Matte")
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]


def test_a_failed_rename_leaves_no_temporary_file(tmp_path):
    (tmp_path / "f.png").mkdir()  # a folder where the frame should go
    with pytest.raises(FrameWriteError, match="f.png"):
        frame_io.write_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"] and (tmp_path / "f.png").is_dir()


def test_a_failed_encode_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):
        return False  # what cv2.imwrite says when it cannot write

    monkeypatch.setattr(frame_io.cv2, "imwrite", refuse)
    with pytest.raises(FrameWriteError, match="refused"):
        frame_io.write_temp(tmp_path / "f.exr", np.zeros((4, 4, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_temp_file_is_only_visible_after_commit(tmp_path):
    path = tmp_path / "f.exr"
    tmp = frame_io.write_temp(path, np.zeros((4, 4, 3), np.float32))
    assert tmp.exists() and not path.exists() and tmp.suffix == ".exr" and tmp.name.startswith(".")
    frame_io.commit(tmp, path)
    assert path.exists() and not tmp.exists()


def test_video_write_count_and_selective_decode(tmp_path):
    frames = [np.full((32, 48, 3), v, np.float32) for v in (0.1, 0.5, 0.9, 0.3)]
    frames[0][..., 0] = 1.0
    path = tmp_path / "clip.avi"
    frame_io.write_video(path, frames, fourcc="MJPG")
    assert frame_io.count_video_frames(path) == 4
    got = list(frame_io.iter_video(path, [1, 3]))
    assert [i for i, _ in got] == [1, 3]
    assert got[0][1].shape == (32, 48, 3) and got[0][1].dtype == np.float32
    assert abs(float(got[0][1].mean()) - 0.5) < 0.03 and abs(float(got[1][1].mean()) - 0.3) < 0.03
    first = next(frame_io.iter_video(path))[1]
    assert first[..., 0].mean() > 0.9 and first[..., 1].mean() < 0.2  # RGB order
    with pytest.raises(FrameReadError, match="ended"):
        list(frame_io.iter_video(path, [7]))
