"""Issue #27: one ``.pt`` with a final and a preview resolution, switched by the ``quality`` knob.

S = 128 with a preview at 64, exported through the CLI from a synthetic checkpoint trained
at 256 (random weights, NOT a keyer), so both networks' position embeddings are resized
from the checkpoint's. The references are built independently of the export's
weight-sharing code: the real loader at each size.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from corridorkey_export.cli import main as export_main
from corridorkey_export.export import script_wrapper, trace_network
from corridorkey_export.validate import PlateSpec, validate_torchscript, verify_plate
from corridorkey_export.verify_data import PLATE_SIZE
from corridorkey_export.wrapper import set_knobs
from corridorkey_model.keying import frame
from corridorkey_model.network.checkpoint import POS_EMBED_KEY, load_model, model_at_size
from corridorkey_model.pipeline import frame_io
from corridorkey_model.pipeline.cli import main as run_main
from corridorkey_model.testing import green_screen_plate, make_random_model, plate_tensor

pytestmark = pytest.mark.slow

S, P = 128, 64


def _export(*args):
    result = CliRunner().invoke(export_main, [*map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


@pytest.fixture(scope="module")
def ckpt(synthetic_checkpoint):
    return synthetic_checkpoint  # S = 256 (tests/conftest.py)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, ckpt):
    """The same checkpoint exported at S with a preview at P (validated), and at S alone (not validated)."""
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    folder = tmp_path_factory.mktemp("preview")
    both = folder / "both" / "CorridorKey.pt"
    result, text = _export("--checkpoint", ckpt, "--img-size", S, "--preview-size", P, "--validate", "--fp16", "off",
                           "-o", both)
    assert result.exit_code == 0, text
    plain = folder / "plain" / "CorridorKey.pt"
    result, plain_text = _export("--checkpoint", ckpt, "--img-size", S, "-o", plain)
    assert result.exit_code == 0, plain_text
    return {"both": both, "plain": plain, "text": text}


@pytest.fixture(scope="module")
def references(ckpt):
    """The eager networks at S and P, each loaded from the checkpoint by the loader (no sharing)."""
    return {S: load_model(ckpt, img_size=S)[0], P: load_model(ckpt, img_size=P)[0]}


def _plate(h=45, w=70, seed=5, linear=False):
    return PlateSpec("p", h, w, seed=seed).tensor(linear=linear)


def test_quality_picks_the_resolution_and_each_path_is_its_reference(checkpoints, references):
    m = torch.jit.load(str(checkpoints["both"]))
    assert (m.img_size, m.preview_size, m.quality) == (S, P, 0)
    x = _plate()
    set_knobs(m, quality=0)
    final = m(x)
    set_knobs(m, quality=1)
    preview = m(x)
    # independent references: the loader's network at each size, the frame math
    assert (final - frame.key_frame(references[S], x)).abs().max().item() <= 1e-5
    assert (preview - frame.key_frame(references[P], x)).abs().max().item() <= 1e-5
    assert (preview - final).abs().max().item() > 1e-2  # two different networks really ran
    # the preview network sees a P x P input: the stage method resizes to the knob's resolution
    assert tuple(m.preprocess(x, 0, 0, 1).shape) == (1, 4, P, P)
    assert tuple(m.preprocess(x, 0, 0, 0).shape) == (1, 4, S, S)
    # other knobs act on the preview path too
    set_knobs(m, quality=1, despill_strength=10.0, gamma_input=1, auto_hint=1)
    xl = _plate(linear=True)
    assert (m(xl) - frame.key_frame(references[P], xl, gamma_input=1, despill_strength=10.0, auto_hint=1)
            ).abs().max().item() <= 1e-5


def test_a_file_without_preview_ignores_quality(checkpoints):
    m = torch.jit.load(str(checkpoints["plain"]))
    assert m.preview_size == 0 and not hasattr(m, "preview_network")
    x = _plate(seed=6)
    set_knobs(m, quality=0)
    final = m(x)
    set_knobs(m, quality=1)
    assert torch.equal(m(x), final)
    manifest = json.loads(checkpoints["plain"].with_suffix(".manifest.json").read_text())
    assert manifest["preview_size"] == 0


def test_the_weights_are_stored_once(checkpoints, references):
    both, plain = checkpoints["both"].stat().st_size, checkpoints["plain"].stat().st_size
    pos_embed = references[P].state_dict()[POS_EMBED_KEY]
    extra = both - plain
    # the preview adds its own position embedding and its code, not a second copy of the ~280 MB of weights
    assert pos_embed.numel() * 4 <= extra <= pos_embed.numel() * 4 + (4 << 20), (both, plain)
    m = torch.jit.load(str(checkpoints["both"]))
    assert m.network.state_dict()["encoder.model.blocks.0.attn.qkv.weight"].data_ptr() == \
        m.preview_network.state_dict()["encoder.model.blocks.0.attn.qkv.weight"].data_ptr()


def test_validation_proves_both_paths_and_verify_data_is_its_output(checkpoints):
    text = checkpoints["text"]
    assert "preview at 64 (quality 1)" in text and "PASSED" in text
    out = checkpoints["both"]
    manifest = json.loads(out.with_suffix(".manifest.json").read_text())
    assert manifest["preview_size"] == P and manifest["img_size"] == S
    rows = [r for r in manifest["validation"]["rows"] if r["stage"] == "forward"]
    assert sorted(r["knobs"]["quality"] for r in rows) == [0, 1]  # both paths end to end
    assert manifest["validation"]["reference_forwards"] == 0  # both references are the traces' eager runs
    assert manifest["validation"]["preview_size"] == P
    # the Verify reference is the validation's call on the Verify plate at the defaults: the file's output there
    verify = json.loads((out.parent / "CorridorKey.verify.json").read_text())
    assert verify["preview_size"] == P and verify["knobs"]["quality"] == 0
    m = torch.jit.load(str(out))
    width, height = PLATE_SIZE
    assert (verify_plate().width, verify_plate().height) == (width, height)
    got = m(plate_tensor(green_screen_plate(height, width, seed=21)))[0].permute(1, 2, 0).numpy()
    for s in verify["samples"]:
        assert np.allclose(got[height - 1 - s["y"], s["x"]], s["values"], atol=1e-6), s


def test_validation_fails_when_the_preview_network_is_not_the_reference(references):
    model = references[S]
    right = model_at_size(model, P)
    wrong = make_random_model(P, seed=9)  # other weights behind the preview path
    ts = script_wrapper(trace_network(model, S), S, 1, trace_network(wrong, P), P)
    plates = (PlateSpec("wide", 41, 67, seed=1), verify_plate())
    report = validate_torchscript(ts, model, preview_model=right, plates=plates, fp16="off", progress=False)
    assert not report.passed
    bad = [r for r in report.rows if r.max_error > 1e-5]
    assert bad and all(r.stage == "forward" and r.knobs["quality"] == 1 for r in bad)
    with pytest.raises(ValueError, match="preview path at 64 px"):
        validate_torchscript(ts, model, plates=plates, fp16="off", progress=False)


@pytest.mark.parametrize("args,expect", [
    (("--preview-size", 128), "must be smaller than the model resolution 128"),
    (("--preview-size", 80), "multiple of 32"),
])
def test_bad_preview_size_is_a_usage_error(tmp_path, args, expect):
    result, text = _export("--random-init", "--img-size", S, *args, "-o", tmp_path / "ck.pt")
    assert result.exit_code == 2, text
    assert expect in text
    assert not list(tmp_path.iterdir())


def test_validate_command_rebuilds_the_preview_reference(checkpoints, ckpt):
    result, text = _export("validate", checkpoints["both"], "--checkpoint", ckpt, "--fp16", "off")
    assert result.exit_code == 0, text
    assert "preview at 64 (quality 1)" in text and "PASSED" in text


# --------------------------------------------------------------------------- corridorkey run --quality


def _clip(root: Path, n: int = 2, h: int = 40, w: int = 56) -> Path:
    (root / "Input").mkdir(parents=True)
    (root / "AlphaHint").mkdir()
    for i in range(n):
        p = green_screen_plate(h, w, seed=i)
        frame_io.write_image(root / "Input" / f"shot.{1001 + i}.exr", p[..., :3], frame_io.ExrOptions("float"))
        frame_io.write_image(root / "AlphaHint" / f"shot.{1001 + i}.exr", p[..., 3], frame_io.ExrOptions("float"))
    return root


def _run(*args):
    result = CliRunner().invoke(run_main, ["run", *map(str, args)])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_run_quality_preview_keys_like_the_pt_at_quality_1(tmp_path, checkpoints, ckpt):
    clip = _clip(tmp_path / "Shot")
    result, text = _run(clip, "--checkpoint", ckpt, "--img-size", S, "--quality", "preview", "--preview-size", P,
                        "--gamma", "srgb", "--format", "exr", "--exr-type", "float")
    assert result.exit_code == 0, text
    m = torch.jit.load(str(checkpoints["both"]))
    set_knobs(m, quality=1)
    for i in range(2):
        plate = green_screen_plate(40, 56, seed=i)
        want = m(plate_tensor(plate))[0, 3].numpy()
        matte = cv2.imread(str(clip / "Output" / "Matte" / f"shot.{1001 + i}.exr"), cv2.IMREAD_UNCHANGED)
        got = matte if matte.ndim == 2 else matte[..., 0]
        assert np.abs(got - want).max() <= 1e-5
    record = json.loads((clip / "Output" / "corridorkey_settings.json").read_text())["settings"]
    assert (record["quality"], record["preview_size"], record["img_size"]) == ("preview", P, S)
    # a resume at the other quality would mix two keys: refused, naming the difference
    (clip / "Output" / "Matte" / "shot.1002.exr").unlink()  # a frame left to key
    result, text = _run(clip, "--checkpoint", ckpt, "--img-size", S, "--quality", "final", "--gamma", "srgb",
                        "--format", "exr", "--exr-type", "float")
    assert result.exit_code == 1 and "quality: 'preview' -> None" in text, text


def test_run_quality_preview_needs_a_smaller_preview_size(tmp_path):
    clip = _clip(tmp_path / "Shot", n=1)
    result, text = _run(clip, "--random-init", "--img-size", S, "--quality", "preview", "--preview-size", S)
    assert result.exit_code == 2, text
    assert "must be smaller than --img-size 128" in text
    assert not (clip / "Output").exists()


def test_farm_job_passes_quality_to_every_task(tmp_path):
    pytest.importorskip("openjd.model", reason="openjd-model is not installed (pip install -e '.[test]')")
    import yaml

    clip = _clip(tmp_path / "Shot", n=1)
    job = tmp_path / "job.yaml"
    result = CliRunner().invoke(run_main, ["farm-job", str(clip), "--output", str(job), "--random-init",
                                           "--img-size", str(S), "--quality", "preview", "--preview-size", str(P)])
    assert result.exit_code == 0, result.output
    params = {p["name"]: p for p in yaml.safe_load(job.read_text())["parameterDefinitions"]}
    assert params["Quality"]["default"] == "preview"
    assert sorted(params["Quality"]["allowedValues"]) == ["final", "preview"]
    assert params["PreviewSize"]["default"] == P
    # refused before any job is written, like run
    bad = CliRunner().invoke(run_main, ["farm-job", str(clip), "--output", str(tmp_path / "bad.yaml"),
                                        "--random-init", "--img-size", str(S), "--quality", "preview",
                                        "--preview-size", str(S)])
    assert bad.exit_code == 2 and not (tmp_path / "bad.yaml").exists()
