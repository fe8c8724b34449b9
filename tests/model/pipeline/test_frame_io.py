"""Frame reading/writing through OpenImageIO: formats, bit depths, geometry, parts and layers, errors, atomic writes.

Every file is written here by the test, with OpenImageIO or OpenCV (no binary fixtures). Where a
fact about the written file is checked, it is read from the bytes of the EXR header
(:func:`exr_header`, after the OpenEXR file layout), or with OpenCV, not with the code under test.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np
import OpenImageIO as oiio
import pytest
from media_files import EXR_CODES, exr_header, write_oiio

from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.frame_io import Box, ExrOptions, FrameReadError, FrameWriteError


def _image(h=20, w=30, c=3, seed=0):
    img = np.random.default_rng(seed).random((h, w, c)).astype(np.float32)
    img[0, 0, :3] = [1.0, 0.0, 0.0]  # a pure red pixel proves the channel order
    return img



# --------------------------------------------------------------------------- formats


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
        np.testing.assert_allclose(raw[..., ::-1] / 65535.0, img, atol=step / 2 + 1e-7)  # OpenCV agrees (BGR)
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


def test_dpx_10bit_reads_as_code_over_1023(tmp_path):
    codes = np.array([0, 1, 64, 512, 940, 1023], np.float64)
    rgb = np.stack([codes, codes[::-1], np.full(6, 300.0)], -1)[None]  # 1 x 6 x 3
    spec = oiio.ImageSpec(6, 1, 3, "uint16")
    spec.attribute("oiio:BitsPerSample", 10)
    path = tmp_path / "plate.0001.dpx"
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    assert out.write_image((rgb / 1023.0).astype(np.float32))  # exact codes
    out.close()
    back = frame_io.read_image(path)
    np.testing.assert_allclose(back, rgb / 1023.0, atol=1.0 / 65535)


@pytest.mark.parametrize("pixel_type,code,tol", [("half", 1, 2 ** -11), ("float", 2, 0.0)])
def test_exr_round_trip_keeps_floats_out_of_range(tmp_path, pixel_type, code, tol):
    img = _image(c=4) * 6.0 - 1.0  # values in [-1, 5]
    path = tmp_path / "f.exr"
    frame_io.write_image(path, img, ExrOptions(pixel_type, "zip"))
    back = frame_io.read_image(path)
    assert back.shape == img.shape and back.dtype == np.float32
    assert np.all(np.abs(back - img) <= np.abs(img) * tol + 1e-7)
    header = exr_header(path)
    assert header["compression"] == EXR_CODES["zip"]
    assert sorted(header["channels"]) == [(n, code) for n in "ABGR"]


def test_every_exr_compression_reaches_the_file_and_reads_back(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32) / 31.0
    img = np.stack([yy, xx, (yy + xx) / 2], -1)  # smooth, so the lossy ones (b44, dwa) stay close
    assert set(EXR_CODES) <= set(frame_io.EXR_COMPRESSIONS)
    for name in frame_io.EXR_COMPRESSIONS:
        path = tmp_path / f"{name}.exr"
        frame_io.write_image(path, img, ExrOptions("half", name))
        if name in EXR_CODES:
            assert exr_header(path)["compression"] == EXR_CODES[name], name
        err = np.abs(frame_io.read_image(path) - img).max()
        assert err <= (2 ** -11 if name in frame_io.LOSSLESS_EXR_COMPRESSIONS else 0.02), (name, err)


def test_dwaa_and_dwab_outputs_read_back_in_another_reader(tmp_path):
    """The issue's defect: DWAA/DWAB could not be written. Read back with OpenImageIO's own ImageBuf too."""
    img = _image(64, 64, 4)
    for name in ("dwaa", "dwab"):
        path = tmp_path / f"{name}.exr"
        frame_io.write_image(path, img, ExrOptions("half", name))
        buf = oiio.ImageBuf(str(path))
        assert buf.spec().get_string_attribute("compression") == name
        pixels = buf.get_pixels(oiio.FLOAT)
        assert pixels.shape == img.shape
        assert np.abs(pixels[..., 3] - img[..., 3]).max() <= 2 ** -11  # DWA keeps alpha lossless
        assert np.abs(pixels[..., :3] - img[..., :3]).mean() < 0.02


def test_single_channel_exr(tmp_path):
    a = np.linspace(0, 1, 60, dtype=np.float32).reshape(6, 10)
    frame_io.write_image(tmp_path / "m.exr", a, ExrOptions("float"))
    back = frame_io.read_image(tmp_path / "m.exr")
    assert back.shape == (6, 10, 1)
    np.testing.assert_array_equal(back[..., 0], a)


def test_tiled_exr_is_read(tmp_path):
    img = _image(40, 50, 3)
    write_oiio(tmp_path / "tiled.exr", img, tiles=16)
    np.testing.assert_array_equal(frame_io.read_image(tmp_path / "tiled.exr"), img)


def test_hint_channel_rules():
    grey = np.full((2, 2, 1), 0.3, np.float32)
    rgb = np.stack([np.full((2, 2), v, np.float32) for v in (0.1, 0.2, 0.3)], -1)
    rgba = np.concatenate([rgb, np.full((2, 2, 1), 0.9, np.float32)], -1)
    assert np.all(frame_io.hint_channel(grey) == 0.3)
    assert np.all(frame_io.hint_channel(rgb) == np.float32(0.1))  # red
    assert np.all(frame_io.hint_channel(rgba) == np.float32(0.9))  # alpha
    assert frame_io.plate_rgb(grey).shape == (2, 2, 3)
    assert frame_io.plate_rgb(rgba).shape == (2, 2, 3)


# --------------------------------------------------------------------------- geometry


def test_offset_data_window_is_placed_in_the_display_window(tmp_path):
    """The issue's defect: a 128x72 bbox at (10,5) of a 200x100 format was keyed as a 128x72 image at 0,0."""
    img = _image(72, 128, 3) + 0.5  # nothing 0, so the placement shows
    path = tmp_path / "bbox.exr"
    write_oiio(path, img, x=10, y=5, full=(0, 0, 200, 100), attrs=[("PixelAspectRatio", 2.0)])
    back, info = frame_io.read_with_info(path)
    assert back.shape == (100, 200, 3)
    np.testing.assert_array_equal(back[5:77, 10:138], img)
    back[5:77, 10:138] = 0
    assert not back.any()  # zeros where nothing is stored
    assert info.geometry.data == Box(10, 5, 138, 77) and info.geometry.display == Box(0, 0, 200, 100)
    assert info.geometry.pixel_aspect == 2.0


def test_output_gets_the_plate_geometry_and_metadata(tmp_path):
    plate = tmp_path / "bbox.exr"
    write_oiio(plate, _image(72, 128, 3), x=10, y=5, full=(0, 0, 200, 100),
               attrs=[("PixelAspectRatio", 2.0), ("FramesPerSecond", oiio.TypeRational, (24000, 1001)),
                      ("smpte:TimeCode", oiio.TypeTimeCode, (0x01000012, 0)), ("owner", "plates dept")])
    info = frame_io.read_info(plate)
    matte = np.zeros((100, 200), np.float32)
    matte[5:77, 10:138] = 0.25
    matte[0, 0] = 1.0  # outside the plate's data window, inside its format: stored (issue #26 item 7)
    out = tmp_path / "matte.exr"
    frame_io.write_image(out, matte, ExrOptions("float"), info=info, colorspace="lin_rec709_scene")
    header = exr_header(out)
    assert header["dataWindow"] == (0, 0, 199, 99)  # data window = display window: the format is keyed
    assert header["displayWindow"] == (0, 0, 199, 99)
    assert header["pixelAspectRatio"] == 2.0
    assert header["owner"] == "plates dept"
    assert struct.unpack("<2I", header["timeCode"]) == (0x01000012, 0)  # 01:00:00:12, BCD
    assert struct.unpack("<iI", header["FramesPerSecond"]) == (24000, 1001)  # OpenImageIO keeps its own name
    assert header["colorInteropID"] == "lin_rec709_scene"
    back = frame_io.read_image(out)
    np.testing.assert_array_equal(back[..., 0], matte)
    png = tmp_path / "matte.png"  # no windows in PNG: the format is written, so it still lines up
    frame_io.write_image(png, matte, info=info)
    assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape == (100, 200)


def test_hint_is_read_into_the_plate_window(tmp_path):
    hint = np.full((100, 200, 1), 0.5, np.float32)
    frame_io.write_image(tmp_path / "hint.png", hint)
    window = Box(10, 5, 138, 77)
    got = frame_io.read_image(tmp_path / "hint.png", window=window)
    assert got.shape == (72, 128, 1)
    overscan = frame_io.read_image(tmp_path / "hint.png", window=Box(-4, -2, 204, 102))
    assert overscan.shape == (104, 208, 1) and overscan[0, 0, 0] == 0 and abs(overscan[2, 4, 0] - 0.5) < 1e-4


def test_overscan_plate_is_read_over_its_format_only(tmp_path):
    """Issue #26 item 7: pixels stored outside the display window are dropped (the gizmo's Crop to the format)."""
    img = _image(120, 220, 3) + 0.5
    write_oiio(tmp_path / "over.exr", img, x=-10, y=-10, full=(0, 0, 200, 100))
    back = frame_io.read_image(tmp_path / "over.exr")
    assert back.shape == (100, 200, 3)
    np.testing.assert_array_equal(back, img[10:110, 10:210])


@pytest.mark.parametrize("n_in,n_out", [(1, 5), (3, 7), (540, 1080), (1080, 540), (960, 1921), (7, 3), (5, 5)])
def test_nearest_source_indices_follow_the_pixel_centre_formula(n_in, n_out):
    """The gizmo's Reformat (filter impulse): output pixel i takes input pixel floor((i + 0.5) * in / out)."""
    expected = [int(np.floor((i + 0.5) * n_in / n_out)) for i in range(n_out)]
    got = frame_io.nearest_source_indices(n_in, n_out)
    assert got.tolist() == expected
    assert got.min() >= 0 and got.max() < n_in


def test_resize_nearest_takes_input_pixels_unchanged():
    src = np.arange(6 * 8, dtype=np.float32).reshape(6, 8)
    out = frame_io.resize_nearest(src, 3, 4)
    np.testing.assert_array_equal(out, src[[1, 3, 5]][:, [1, 3, 5, 7]])  # centres 1, 3, 5 of 6 and 1..7 of 8
    up = frame_io.resize_nearest(src, 12, 16)
    np.testing.assert_array_equal(up[::2, ::2], src)
    np.testing.assert_array_equal(up[1::2, 1::2], src)


@pytest.mark.parametrize("hint,plate,ok", [((960, 540), (1920, 1080), True), ((960, 540), (1921, 1081), True),
                                            ((1920, 1079), (1920, 1080), True), ((1920, 1080), (1920, 1082), False),
                                            ((1000, 1000), (1920, 1080), False), ((64, 48), (72, 40), False)])
def test_a_hint_is_fitted_only_at_the_plates_aspect(hint, plate, ok):
    img = np.ones((hint[1], hint[0], 1), np.float32)
    if ok:
        assert frame_io.fit_to_format(img, plate).shape == (plate[1], plate[0], 1)
    else:
        with pytest.raises(FrameReadError, match=f"{hint[0]}x{hint[1]}.*{plate[0]}x{plate[1]}.*aspect"):
            frame_io.fit_to_format(img, plate)


def test_straight_alpha_does_not_change_the_rgb(tmp_path):
    """Issue #31 defect 1: OpenImageIO premultiplied a straight-alpha PNG or TIFF on read (RGB x 0.25)."""
    px = np.zeros((4, 6, 4), np.uint16)
    px[..., :3], px[..., 3] = 40000, 16384
    cv2.imwrite(str(tmp_path / "straight.png"), px)  # BGRA; grey RGB, so the order does not matter
    back = frame_io.read_image(tmp_path / "straight.png")
    np.testing.assert_allclose(back[..., :3], 40000 / 65535, atol=1e-6)
    np.testing.assert_allclose(back[..., 3], 16384 / 65535, atol=1e-6)
    spec = oiio.ImageSpec(6, 4, 4, "uint16")
    spec.alpha_channel = 3
    spec.attribute("oiio:UnassociatedAlpha", 1)  # TIFF ExtraSamples = unassociated alpha
    rgba = np.concatenate([np.full((4, 6, 3), 0.8, np.float32), np.full((4, 6, 1), 0.5, np.float32)], -1)
    out = oiio.ImageOutput.create(str(tmp_path / "straight.tif"))
    assert out.open(str(tmp_path / "straight.tif"), spec) and out.write_image(rgba)
    out.close()
    np.testing.assert_allclose(frame_io.read_image(tmp_path / "straight.tif"), rgba, atol=1e-4)


# --------------------------------------------------------------------------- parts and layers


def _multipart(path, parts):
    """Write a multi-part EXR: ``parts`` is [(part name, channel names, pixels)]."""
    specs = []
    for name, names, px in parts:
        spec = oiio.ImageSpec(px.shape[1], px.shape[0], px.shape[2], "float")
        spec.channelnames = tuple(names)
        spec.attribute("name", name)
        specs.append(spec)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), specs)
    for k, (_name, _names, px) in enumerate(parts):
        if k:
            assert out.open(str(path), specs[k], "AppendSubimage")
        assert out.write_image(np.ascontiguousarray(px, np.float32))
    out.close()


def test_multipart_exr_keys_the_part_with_rgb_not_the_first(tmp_path):
    """The issue's defect: a multi-part EXR whose first part held depth was keyed from that part."""
    depth = np.full((8, 12, 1), 42.0, np.float32)
    rgba = _image(8, 12, 4)
    _multipart(tmp_path / "mp.exr", [("depth", ["Z"], depth), ("rgba", ["R", "G", "B", "A"], rgba)])
    np.testing.assert_array_equal(frame_io.read_image(tmp_path / "mp.exr"), rgba)
    np.testing.assert_array_equal(frame_io.read_image(tmp_path / "mp.exr", layer="rgba"), rgba)
    with pytest.raises(FrameReadError, match="depth"):
        frame_io.read_image(tmp_path / "mp.exr", layer="nope")


def test_layered_channels_only_names_the_layers_and_reads_with_layer(tmp_path):
    """The issue's defect: an EXR with only beauty.R/G/B was called corrupt, truncated or not an image."""
    beauty = _image(6, 10, 3)
    spec_px = np.concatenate([beauty, beauty[..., :1] * 0 + 7.0], -1)
    path = tmp_path / "layers.exr"
    write_oiio(path, spec_px, names=["beauty.R", "beauty.G", "beauty.B", "depth.Z"])
    with pytest.raises(FrameReadError, match=r"layers\.exr.*beauty.*depth.*--layer") as err:
        frame_io.read_image(path)
    assert "corrupt" not in str(err.value)
    np.testing.assert_array_equal(frame_io.read_image(path, layer="beauty"), beauty)


def test_layer_picks_one_layer_among_several(tmp_path):
    a, b = _image(6, 10, 4, seed=1), _image(6, 10, 3, seed=2)
    names = ["R", "G", "B", "A", "key.red", "key.green", "key.blue"]
    write_oiio(tmp_path / "two.exr", np.concatenate([a, b], -1), names=names)
    np.testing.assert_array_equal(frame_io.read_image(tmp_path / "two.exr"), a)
    np.testing.assert_array_equal(frame_io.read_image(tmp_path / "two.exr", layer="key"), b)


# --------------------------------------------------------------------------- errors


def test_unreadable_file_names_the_path(tmp_path):
    bad = tmp_path / "0002.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(FrameReadError, match="0002.png"):
        frame_io.read_image(bad)
    with pytest.raises(FrameReadError, match="not found"):
        frame_io.read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("ext", [".jpg", ".png", ".exr", ".tif", ".dpx"])
def test_truncated_file_of_any_format_is_an_error_naming_it(tmp_path, ext):
    """The issue's defect: a truncated JPEG was keyed from a half-grey decode with exit 0."""
    path = tmp_path / f"plate.0005{ext}"
    write_oiio(path, _image(128, 128, 3), pixel_type="half" if ext == ".exr" else "uint8")
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(FrameReadError, match=f"plate.0005\\{ext}"):
        frame_io.read_image(path)


# --------------------------------------------------------------------------- atomic writes


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


def test_a_failed_encode_leaves_no_temporary_file(tmp_path):
    with pytest.raises(FrameWriteError, match=r"f\.jpg"):  # JPEG stops at 65500 pixels: the encoder refuses
        frame_io.write_temp(tmp_path / "f.jpg", np.zeros((70000, 1, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_temp_file_is_only_visible_after_commit(tmp_path):
    path = tmp_path / "f.exr"
    tmp = frame_io.write_temp(path, np.zeros((4, 4, 3), np.float32))
    assert tmp.exists() and not path.exists() and tmp.suffix == ".exr" and tmp.name.startswith(".")
    frame_io.commit(tmp, path)
    assert path.exists() and not tmp.exists()


def test_the_earlier_compression_name_no_still_writes_none(tmp_path):
    """`--exr-compression no` (OpenCV's name, in farm jobs written before OpenImageIO) keeps working."""
    path = tmp_path / "no.exr"
    frame_io.write_image(path, _image(8, 8, 3), ExrOptions("half", "no"))
    assert exr_header(path)["compression"] == EXR_CODES["none"]


def test_a_read_only_disk_is_named_as_such(tmp_path, monkeypatch):
    """Issue #31 defect 14: a read-only file system was reported as a permissions problem (os.access)."""
    import os

    from corridorkey_model.pipeline.frame_io import common

    real = os.statvfs

    def statvfs(path):  # the file system of tmp_path, as a read-only mount reports it
        st = real(path)
        return type("Stat", (), {"f_flag": st.f_flag | os.ST_RDONLY})()

    monkeypatch.setattr(common.os, "statvfs", statvfs)
    with pytest.raises(FrameWriteError, match="read-only file system") as info:
        frame_io.check_can_create(tmp_path / "Output" / "Matte")
    assert "permission" not in str(info.value) and str(tmp_path) in str(info.value)
    monkeypatch.setattr(common.os, "statvfs", real)
    frame_io.check_can_create(tmp_path / "Output" / "Matte")  # a writable disk passes
