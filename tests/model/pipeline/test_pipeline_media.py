"""The pipeline end to end on VFX media: bbox EXRs, layers, truncated JPEGs, DWA, layered output, OCIO, video out.

A synthetic checkpoint at S=64 (random weights, NOT a keyer). Every plate, hint, video and OCIO
config is written here by the test (OpenImageIO, PyAV, OCIO's own Python API). Expected values
come from :func:`corridorkey_model.keying.frame.key_frame` (the eager reference) on inputs
composed in the test, and colour conversions from OCIO processors built in the test.
"""

from __future__ import annotations

import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio
import pytest
from click.testing import CliRunner
from media_files import EXR_CODES, encode, exr_header, write_oiio

from corridorkey_model.keying import frame
from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.pipeline import frame_io, settings_record
from corridorkey_model.pipeline.cli import main
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor, save_checkpoint

S = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt64") / "synthetic_64.pth"
    return save_checkpoint(make_random_model(S, seed=5), path, layout="bare")


@pytest.fixture(scope="module")
def model(ckpt):
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    m, _ = load_model(ckpt, img_size=S)
    return m


def run_cli(*args, env=None):
    result = CliRunner(env=env).invoke(main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def key(model, plate_rgb, hint, gamma=frame.GAMMA_SRGB):
    """The eager reference on an H x W x 3 plate and an H x W hint: (fg H x W x 3, alpha H x W)."""
    x = np.concatenate([plate_rgb, hint[..., None]], axis=2).astype(np.float32)
    out = frame.key_frame(model, plate_tensor(x), gamma)[0].permute(1, 2, 0).numpy()
    return out[..., :3], out[..., 3]


def data_window_pixels(path, channels=None):
    """The stored pixels of an EXR (its data window only), read with OpenImageIO's ImageBuf."""
    buf = oiio.ImageBuf(str(path))
    px = buf.get_pixels(oiio.FLOAT)
    return px if channels is None else px[..., channels]


def clip_folders(root):
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    return root


# --------------------------------------------------------------------------- geometry and layers


def test_bbox_exr_plate_outputs_keep_its_geometry_and_line_up(tmp_path, ckpt, model):
    """The issue's defect 1: a 128x72 data window at (10,5) of a 200x100 format was keyed at 0,0.

    The format is keyed (issue #26 item 7): outputs have data window = display window."""
    root = clip_folders(tmp_path / "Shot_bbox")
    full = green_screen_plate(100, 200, seed=1, linear=True)
    rgb = full[5:77, 10:138, :3]  # the stored pixels
    write_oiio(root / "Input" / "plate.1001.exr", rgb, x=10, y=5, full=(0, 0, 200, 100),
               attrs=[("PixelAspectRatio", 2.0)])
    frame_io.write_image(root / "AlphaHint" / "hint.1001.png", full[..., 3])  # a format-sized hint
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float")
    assert result.exit_code == 0, text
    # expected: the plate placed in its format (zeros outside the data window), keyed
    placed = np.zeros((100, 200, 3), np.float32)
    placed[5:77, 10:138] = rgb
    hint = frame_io.read_image(root / "AlphaHint" / "hint.1001.png")[..., 0]
    fg, alpha = key(model, placed, hint, frame.GAMMA_LINEAR)
    out = root / "Output"
    for folder in ("Matte", "FG", "Processed"):
        header = exr_header(out / folder / "plate.1001.exr")
        assert header["dataWindow"] == (0, 0, 199, 99), folder
        assert header["displayWindow"] == (0, 0, 199, 99), folder
        assert header["pixelAspectRatio"] == 2.0, folder
    np.testing.assert_allclose(data_window_pixels(out / "Matte" / "plate.1001.exr")[..., 0], alpha, atol=1e-5)
    np.testing.assert_allclose(data_window_pixels(out / "FG" / "plate.1001.exr"), fg, atol=1e-5)
    comp = frame_io.read_image(out / "Comp" / "plate.1001.png")
    assert comp.shape == (100, 200, 3)  # PNG has no windows: the format


def _key_one(root, plate_writer, hint, ckpt, *args):
    """Key a one-frame clip whose plate ``plate_writer(path)`` writes, with ``hint`` (H x W) as a 16-bit PNG."""
    clip_folders(root)
    plate_writer(root / "Input" / "plate.1001.exr")
    frame_io.write_image(root / "AlphaHint" / "hint.1001.png", hint)
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float", *args)
    assert result.exit_code == 0, text
    return {k: data_window_pixels(root / "Output" / k / "plate.1001.exr") for k in ("Matte", "FG", "Processed")}, text


def test_overscan_plate_keys_as_the_plate_cropped_to_its_format(tmp_path, ckpt):
    """Issue #26 item 7: the node keys the format (the gizmo's Crop); stored pixels outside it are dropped."""
    big = green_screen_plate(60, 90, seed=3, linear=True)[..., :3] + 0.05
    hint = green_screen_plate(40, 64, seed=3)[..., 3]
    over, _ = _key_one(tmp_path / "over", lambda p: write_oiio(p, big, x=-11, y=-7, full=(0, 0, 64, 40)), hint, ckpt)
    crop, _ = _key_one(tmp_path / "crop", lambda p: write_oiio(p, big[7:47, 11:75]), hint, ckpt)
    for k in crop:
        assert over[k].shape[:2] == (40, 64), k
        np.testing.assert_array_equal(over[k], crop[k], err_msg=k)
    assert exr_header(tmp_path / "over" / "Output" / "Matte" / "plate.1001.exr")["dataWindow"] == (0, 0, 63, 39)


def test_half_resolution_hint_keys_as_its_nearest_neighbour_upscale(tmp_path, ckpt, caplog):
    """Issue #26 item 4: a hint of the plate's aspect at another size is fitted as Reformat (impulse) does."""
    plate = green_screen_plate(40, 64, seed=4)[..., :3]
    small = np.round(green_screen_plate(20, 32, seed=4)[..., 3] * 65535) / 65535  # what the 16-bit PNG holds
    upscale = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)  # floor((i + 0.5) / 2) = i // 2 per axis
    with caplog.at_level(logging.INFO, logger="corridorkey_model"):
        half, _ = _key_one(tmp_path / "half", lambda p: write_oiio(p, plate), small, ckpt, "--gamma", "srgb")
    assert "fitted" in caplog.text and "32x20" in caplog.text
    full, _ = _key_one(tmp_path / "full", lambda p: write_oiio(p, plate), upscale, ckpt, "--gamma", "srgb")
    for k in full:
        np.testing.assert_array_equal(half[k], full[k], err_msg=k)


def test_hint_of_another_aspect_is_refused_before_the_model_loads(tmp_path, ckpt):
    root = clip_folders(tmp_path / "Shot_aspect")
    write_oiio(root / "Input" / "plate.1001.exr", green_screen_plate(40, 64, seed=4)[..., :3])
    frame_io.write_image(root / "AlphaHint" / "hint.1001.png", np.zeros((40, 40), np.float32))
    result, text = run_cli(root, "--random-init", "--img-size", S)
    assert result.exit_code == 1 and "64x40" in text and "40x40" in text and "aspect" in text, text
    assert "RANDOM" not in text and not (root / "Output").exists()


def test_hint_lines_up_with_the_plate_format_whatever_its_origin(tmp_path, ckpt):
    """Issue #31 defect 2: an EXR plate whose display window starts at (100, 50) got an all-zero PNG hint."""
    plate = green_screen_plate(40, 64, seed=6, linear=True)
    hint = plate[..., 3]
    moved, _ = _key_one(tmp_path / "moved", lambda p: write_oiio(p, plate[..., :3], x=100, y=50,
                                                                 full=(100, 50, 64, 40)), hint, ckpt)
    plain, _ = _key_one(tmp_path / "plain", lambda p: write_oiio(p, plate[..., :3]), hint, ckpt)
    for k in plain:
        np.testing.assert_array_equal(moved[k], plain[k], err_msg=k)
    header = exr_header(tmp_path / "moved" / "Output" / "Matte" / "plate.1001.exr")
    assert header["dataWindow"] == header["displayWindow"] == (100, 50, 163, 89)


def test_layered_plate_needs_layer_and_keys_with_it(tmp_path, ckpt, model):
    """The issue's defect 3: beauty.R/G/B only was called corrupt; now the error names the layers."""
    root = clip_folders(tmp_path / "Shot_layers")
    p = green_screen_plate(40, 56, seed=2)
    write_oiio(root / "Input" / "plate.1001.exr", np.concatenate([p[..., :3], p[..., :1] * 0 + 3.0], -1),
               names=["beauty.R", "beauty.G", "beauty.B", "depth.Z"])
    frame_io.write_image(root / "AlphaHint" / "h.1001.exr", p[..., 3], frame_io.ExrOptions("float"))
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S)
    assert result.exit_code == 1 and "beauty" in text and "--layer" in text and "corrupt" not in text, text
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--layer", "beauty", "--gamma", "srgb",
                           "--exr-type", "float")
    assert result.exit_code == 0, text
    _fg, alpha = key(model, p[..., :3], p[..., 3])
    np.testing.assert_allclose(frame_io.read_image(root / "Output" / "Matte" / "plate.1001.exr")[..., 0], alpha,
                               atol=1e-5)


def test_truncated_jpeg_stops_the_run_naming_it(tmp_path, ckpt):
    """The issue's defect 4: a truncated JPEG was keyed from a half-grey decode with exit 0."""
    root = clip_folders(tmp_path / "Shot_jpg")
    for i in range(3):
        p = green_screen_plate(64, 96, seed=i)
        frame_io.write_image(root / "Input" / f"plate.{1001 + i}.jpg", p[..., :3])
        frame_io.write_image(root / "AlphaHint" / f"h.{1001 + i}.png", p[..., 3])
    bad = root / "Input" / "plate.1002.jpg"
    bad.write_bytes(bad.read_bytes()[:-400])
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S)
    assert result.exit_code == 1, text
    assert "plate.1002.jpg" in text and "Premature end" in text
    assert sorted(p.name for p in (root / "Output" / "Matte").iterdir()) == ["plate.1001.exr"]


# --------------------------------------------------------------------------- outputs


def _small_clip(root, n=2, h=48, w=64):
    clip_folders(root)
    plates = []
    for i in range(n):
        p = green_screen_plate(h, w, seed=10 + i, linear=True)
        plates.append(p)
        frame_io.write_image(root / "Input" / f"shot.{1001 + i}.exr", p[..., :3], frame_io.ExrOptions("float"))
        frame_io.write_image(root / "AlphaHint" / f"m.{1001 + i}.exr", p[..., 3], frame_io.ExrOptions("float"))
    return plates


def test_dwaa_dwab_outputs_and_layered_exr(tmp_path, ckpt):
    root = tmp_path / "Shot_out"
    _small_clip(root)
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float")
    assert result.exit_code == 0, text
    separate = root / "Output"
    for compression in ("dwaa", "dwab"):
        out = tmp_path / compression
        result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-compression", compression,
                               "--output", out)
        assert result.exit_code == 0, text
        for folder in ("FG", "Processed"):
            path = out / folder / "shot.1001.exr"
            assert exr_header(path)["compression"] == {"dwaa": 8, "dwab": 9}[compression]
            want = frame_io.read_image(separate / folder / "shot.1001.exr")
            got = frame_io.read_image(path)
            assert np.abs(got - want).max() < 0.05, folder  # DWA is lossy on colour
            if folder == "Processed":  # ... but keeps alpha (A) lossless: only the half rounding of the float file
                assert np.abs(got[..., 3] - want[..., 3]).max() <= 2 ** -11
        # Issue #31 defect 3: the one-channel Matte (Y, which DWA compresses lossily) is written with zip: exact
        matte = out / "Matte" / "shot.1001.exr"
        assert exr_header(matte)["compression"] == EXR_CODES["zip"]
        want = frame_io.read_image(separate / "Matte" / "shot.1001.exr").astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(frame_io.read_image(matte), want)
    layered = tmp_path / "layered"
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float", "--layered-exr",
                           "--output", layered)
    assert result.exit_code == 0, text
    assert sorted(p.name for p in layered.iterdir() if p.name != settings_record.FILENAME) == ["Comp", "Layered"]
    path = layered / "Layered" / "shot.1002.exr"
    assert sorted(n for n, _t in exr_header(path)["channels"]) == sorted(
        ["R", "G", "B", "A", "fg.R", "fg.G", "fg.B", "matte.A"])
    np.testing.assert_array_equal(frame_io.read_image(path), frame_io.read_image(separate / "Processed" / path.name))
    np.testing.assert_array_equal(frame_io.read_image(path, "fg"), frame_io.read_image(separate / "FG" / path.name))
    np.testing.assert_array_equal(frame_io.read_image(path, "matte"), frame_io.read_image(separate / "Matte" / path.name))
    # resume: a second run finds the frames done
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--layered-exr", "--output", layered)
    assert result.exit_code == 0 and "nothing to do" in text, text


@pytest.mark.parametrize("pixel_type", ["half", "float"])
@pytest.mark.parametrize("compression", frame_io.EXR_COMPRESSIONS)
def test_every_matte_round_trips_exactly_under_every_compression(tmp_path, compression, pixel_type):
    """Issue #31 defect 3: every matte written (Matte, Hint, Processed's A, Layered's A and matte.A) is exact."""
    from corridorkey_model.pipeline import stages
    from corridorkey_model.pipeline.clips import FrameRef
    from corridorkey_model.pipeline.outputs import OutputSettings

    rng = np.random.default_rng(1)
    alpha = rng.random((24, 40)).astype(np.float32)  # noise: the worst case for block and DCT coders
    exact = alpha.astype(np.float16).astype(np.float32) if pixel_type == "half" else alpha
    fg = rng.random((24, 40, 3)).astype(np.float32)
    processed = np.concatenate([fg * alpha[..., None], alpha[..., None]], -1)
    ref = FrameRef(0, 1001, "f.1001", tmp_path / "f.1001.exr", None)
    keyed = stages.Keyed(ref, fg, alpha, processed, fg, hint=alpha)
    for layered in (False, True):
        out = OutputSettings("exr", frame_io.ExrOptions(pixel_type, compression), layered=layered, write_hints=True)
        folder = tmp_path / f"layered{layered}"
        for name in ("Matte", "FG", "Processed", "Comp", "Hint", "Layered"):
            (folder / name).mkdir(parents=True)
        stages.commit_written(stages.write_frame(keyed, folder, out))
        files = {"Hint": None, "Layered": None, "Layered ": "matte"} if layered else \
            {"Matte": None, "Hint": None, "Processed": None}
        for kind, layer in files.items():
            got = frame_io.read_image(folder / kind.strip() / "f.1001.exr", layer)[..., -1]
            np.testing.assert_array_equal(got, exact, err_msg=f"{kind} {layer or ''}")


# --------------------------------------------------------------------------- OCIO


def srgb_config(path):
    """A nuke-default-equivalent OCIO config: linear and sRGB (the IEC 61966-2-1 curve), roles as nuke-default's."""
    cfg = ocio.Config.CreateRaw()
    srgb = ocio.ColorSpace(name="sRGB")
    curve = ocio.ExponentWithLinearTransform(gamma=[2.4, 2.4, 2.4, 1.0], offset=[0.055, 0.055, 0.055, 0.0],
                                             direction=ocio.TRANSFORM_DIR_INVERSE)
    srgb.setTransform(curve, ocio.COLORSPACE_DIR_FROM_REFERENCE)
    cfg.addColorSpace(ocio.ColorSpace(name="linear"))
    cfg.addColorSpace(srgb)
    cfg.setRole("scene_linear", "linear")
    cfg.setRole("color_picking", "sRGB")
    cfg.setRole("default", "linear")
    path.write_text(cfg.serialize())
    return path


def test_ocio_config_defaults_to_the_environment_and_none_turns_it_off(tmp_path, ckpt):
    root = tmp_path / "Shot_env"
    _small_clip(root, n=1)
    config = srgb_config(tmp_path / "nuke_default_equivalent.ocio")
    runs = {"env": ([], {"OCIO": str(config)}), "option": (["--ocio-config", config], {"OCIO": ""}),
            "none": (["--ocio-config", "none"], {"OCIO": str(config)}), "plain": ([], {"OCIO": ""})}
    got = {}
    for name, (args, env) in runs.items():
        result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float", "--output",
                               tmp_path / name, *args, env=env)
        assert result.exit_code == 0, text
        got[name] = frame_io.read_image(tmp_path / name / "FG" / "shot.1001.exr")
    np.testing.assert_array_equal(got["env"], got["option"])
    np.testing.assert_array_equal(got["none"], got["plain"])
    assert np.abs(got["env"] - got["plain"]).max() > 0.05  # FG is linear (working space) with a config, sRGB without


def test_ocio_nuke_default_equivalent_matches_project_maths_end_to_end(tmp_path, ckpt, model):
    """OCIO route (linear -> sRGB by OCIO, key, sRGB -> linear by OCIO, premultiply) against the project's maths
    (linear_to_srgb, key, srgb_to_linear, premultiply) written out here: within 1e-4."""
    root = tmp_path / "Shot_nd"
    plates = _small_clip(root, n=1)
    config = srgb_config(tmp_path / "nd.ocio")
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float", "--ocio-config", config)
    assert result.exit_code == 0, text
    p = plates[0]
    lin = np.maximum(p[..., :3].astype(np.float64), 0)
    encoded = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055).astype(np.float32)
    fg, alpha = key(model, encoded, p[..., 3])
    f = np.maximum(fg.astype(np.float64), 0)
    fg_lin = np.where(f <= 0.04045, f / 12.92, ((f + 0.055) / 1.055) ** 2.4)
    out = root / "Output"
    processed = frame_io.read_image(out / "Processed" / "shot.1001.exr")
    np.testing.assert_allclose(processed[..., :3], fg_lin * alpha[..., None], atol=1e-4)
    np.testing.assert_allclose(processed[..., 3], alpha, atol=1e-4)  # (the network saw OCIO's curve, ~1e-5 off)
    np.testing.assert_allclose(frame_io.read_image(out / "FG" / "shot.1001.exr"), fg_lin, atol=1e-4)
    label = oiio.ImageInput.open(str(out / "Processed" / "shot.1001.exr")).spec().get_string_attribute("oiio:ColorSpace")
    assert label == "lin_rec709_scene"  # the working space "linear", as OpenImageIO names it


def test_acescg_plate_with_the_builtin_aces_config_equals_the_hand_composed_route(tmp_path, ckpt, model):
    """ocio://cg-config-latest: ACEScg -> sRGB Encoded Rec.709 (sRGB) -> key -> back to ACEScg -> premultiply."""
    root = clip_folders(tmp_path / "Shot_aces")
    rng = np.random.default_rng(3)
    p = green_screen_plate(48, 64, seed=4, linear=True)
    acescg = (p[..., :3] @ np.array([[0.613, 0.070, 0.021], [0.340, 0.916, 0.110], [0.047, 0.014, 0.869]],
                                     np.float32)).astype(np.float32)  # roughly Rec.709 -> AP1, any plate will do
    acescg += rng.normal(0, 0.002, acescg.shape).astype(np.float32)
    write_oiio(root / "Input" / "plate.1001.exr", acescg)
    frame_io.write_image(root / "AlphaHint" / "h.1001.exr", p[..., 3], frame_io.ExrOptions("float"))
    result, text = run_cli(root, "--checkpoint", ckpt, "--img-size", S, "--exr-type", "float", "--ocio-config",
                           "ocio://cg-config-latest")
    assert result.exit_code == 0, text
    cfg = ocio.Config.CreateFromFile("ocio://cg-config-latest")
    to_srgb = cfg.getProcessor("ACEScg", "sRGB Encoded Rec.709 (sRGB)").getDefaultCPUProcessor()
    to_cg = cfg.getProcessor("sRGB Encoded Rec.709 (sRGB)", "ACEScg").getDefaultCPUProcessor()
    net_in = acescg.copy()
    to_srgb.applyRGB(net_in)
    fg, alpha = key(model, net_in, p[..., 3])
    fg_cg = np.ascontiguousarray(fg, np.float32).copy()
    to_cg.applyRGB(fg_cg)
    out = root / "Output"
    processed = frame_io.read_image(out / "Processed" / "plate.1001.exr")
    np.testing.assert_allclose(processed[..., :3], fg_cg * alpha[..., None], atol=1e-5)
    np.testing.assert_allclose(processed[..., 3], alpha, atol=1e-6)
    np.testing.assert_allclose(frame_io.read_image(out / "FG" / "plate.1001.exr"), fg_cg, atol=1e-5)
    assert exr_header(out / "Processed" / "plate.1001.exr")["colorInteropID"] == "lin_ap1_scene"  # ACEScg's interop ID


def test_bad_ocio_space_is_a_usage_error_listing_what_there_is(tmp_path):
    root = tmp_path / "Shot_bad"
    _small_clip(root, n=1)
    result, text = run_cli(root, "--random-init", "--img-size", S, "--ocio-config", "ocio://cg-config-latest",
                           "--working-space", "NoSuchSpace")
    assert result.exit_code == 2 and "NoSuchSpace" in text and "ACEScg" in text, text


def test_the_same_ocio_config_by_another_path_resumes_and_an_edited_one_is_refused(tmp_path, monkeypatch):
    """Issue #31 defect 12: a run with --ocio-config cg.ocio, resumed with its absolute path, was refused."""
    root = tmp_path / "Shot_resume"
    _small_clip(root, n=3)
    config = srgb_config(tmp_path / "cg.ocio")
    monkeypatch.chdir(tmp_path)
    quick = ("--random-init", "--img-size", S, "--device", "cpu")
    result, text = run_cli(root, *quick, "--frames", "1001", "--ocio-config", "cg.ocio")
    assert result.exit_code == 0, text
    record = json.loads(settings_record.record_path(root / "Output").read_text())["settings"]
    assert record["ocio_config"] == str(config) and record["ocio_config_identity"].startswith("sha256:")
    result, text = run_cli(root, *quick, "--frames", "1002", "--ocio-config", config)
    assert result.exit_code == 0 and "1 frame(s) keyed" in text, text
    config.write_text(config.read_text().replace("2.4", "2.2"))  # the same path, another config
    result, text = run_cli(root, *quick, "--frames", "1003", "--ocio-config", config)
    assert result.exit_code == 1 and "ocio_config_identity" in text, text


def test_colour_spaces_without_a_config_are_refused(tmp_path):
    """Issue #31 defect 15: --working-space NoSuchSpace without a config was silently ignored, exit 0."""
    root = tmp_path / "Shot_nocfg"
    _small_clip(root, n=1)
    for args in (["--working-space", "NoSuchSpace"], ["--network-space", "sRGB", "--ocio-config", "none"]):
        result, text = run_cli(root, "--random-init", "--img-size", S, *args, env={"OCIO": ""})
        assert result.exit_code == 2 and args[1] in text and "OCIO config" in text, text
        assert not (root / "Output").exists()


def test_a_bad_ocio_environment_variable_is_named_as_the_source(tmp_path):
    """Issue #31 defect 16: a bad $OCIO gave a "Usage:" error that never said the config came from $OCIO."""
    root = tmp_path / "Shot_env_bad"
    _small_clip(root, n=1)
    result, text = run_cli(root, "--random-init", "--img-size", S, env={"OCIO": str(tmp_path / "gone.ocio")})
    assert result.exit_code == 1 and "$OCIO" in text and "gone.ocio" in text and "Usage:" not in text, text


# --------------------------------------------------------------------------- video


def test_video_out_matches_the_source_and_records_its_metadata(tmp_path, ckpt):
    plates = [green_screen_plate(48, 64, seed=20 + i) for i in range(4)]
    video = encode(tmp_path / "take.mp4", [p[..., :3] for p in plates], rate=Fraction(25))
    hints = tmp_path / "hints"
    hints.mkdir()
    for i, p in enumerate(plates):
        frame_io.write_image(hints / f"h{i}.png", p[..., 3])
    result, text = run_cli(video, "--hint", hints, "--checkpoint", ckpt, "--img-size", S, "--video-out", "h264",
                           "--frames", "1-2")
    assert result.exit_code == 0, text
    out = tmp_path / "take_Output"
    assert not list(out.glob("take.*.mp4"))  # a chunk: the videos wait for the whole clip
    result, text = run_cli(video, "--hint", hints, "--checkpoint", ckpt, "--img-size", S, "--video-out", "h264")
    assert result.exit_code == 0, text
    with av.open(str(video)) as c:
        src = c.streams.video[0]
        src_tags = (src.codec_context.name, src.codec_context.pix_fmt, int(src.codec_context.colorspace))
        src_rate = src.average_rate
    sidecar = json.loads((out / "take.video.json").read_text())
    assert (sidecar["source"]["codec"], sidecar["source"]["pix_fmt"]) == src_tags[:2]
    assert sidecar["source"]["colorspace"] == "bt709" and src_tags[2] == 1
    assert Fraction(sidecar["source"]["frame_rate"]) == src_rate
    for key_ in ("transfer", "primaries", "color_range"):
        assert key_ in sidecar["source"]
    for kind in ("comp", "matte"):
        with av.open(str(out / f"take.{kind}.mp4")) as c:
            s = c.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
            assert (s.average_rate, s.codec_context.width, s.codec_context.height) == (src_rate, 64, 48)
        assert len(frames) == 4
        if kind == "matte":
            for i, f in enumerate(frames):
                matte = frame_io.read_image(out / "Matte" / f"take.{i + 1:04d}.exr")[..., 0]
                assert np.abs(f[..., 1] / 255.0 - matte).mean() < 0.02


def test_image_sequence_video_rate_comes_from_the_plates_header(tmp_path):
    from corridorkey_model.pipeline import clips, outputs, video_out

    root = clip_folders(tmp_path / "Shot_fps")
    for i in range(2):
        p = green_screen_plate(16, 24, seed=i)
        write_oiio(root / "Input" / f"plate.{1001 + i}.exr", p[..., :3],
                   attrs=[("FramesPerSecond", oiio.TypeRational, (25, 1))])
        frame_io.write_image(root / "AlphaHint" / f"h.{1001 + i}.png", p[..., 3])
    clip = clips.load_clip(clips.scan(root)[0])
    meta = video_out.source_metadata(clip)
    assert (meta["kind"], meta["frame_rate"], meta["width"], meta["height"], meta["frames"]) == ("images", "25", 24, 16, 2)
    assert video_out.write_clip_videos(clip, outputs.OutputSettings(), "h264") == []  # nothing keyed yet: no video
    assert not (root / "Output").exists() or not list((root / "Output").glob("*.mp4"))


def test_video_out_refuses_a_frame_of_another_size(tmp_path):
    """Issue #31 defect 4: --video-out squeezed a 72x40 frame of a mostly 64x48 clip into the video."""
    root = clip_folders(tmp_path / "Shot_sizes")
    for n, (h, w) in zip((1001, 1002, 1003), ((48, 64), (40, 72), (48, 64))):
        p = green_screen_plate(h, w, seed=n)
        frame_io.write_image(root / "Input" / f"shot.{n}.png", p[..., :3])
        frame_io.write_image(root / "AlphaHint" / f"h.{n}.png", p[..., 3])
    result, text = run_cli(root, "--random-init", "--img-size", S, "--video-out", "h264")
    assert result.exit_code == 1, text
    assert "shot.1002.png" in text and "72x40" in text and "64x48" in text and "one frame size" in text
    assert not list((root / "Output").glob("*.mp4"))
    with pytest.raises(frame_io.FrameWriteError, match="frame 2 is 72x40 but the first is 64x48"):
        frame_io.write_video(tmp_path / "x.mp4", [np.zeros((48, 64, 3)), np.zeros((40, 72, 3))])
    assert not (tmp_path / "x.mp4").exists()
