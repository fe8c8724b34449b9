"""Checkpoint loading: layouts, strictness, pos_embed resizing, bad files, hashes, the HF cache."""

import hashlib
import logging
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from repo_paths import SYNTH_SIZE

from corridorkey_model.keying.frame import key_frame
from corridorkey_model.network import checkpoint as ck
from corridorkey_model.network.checkpoint import CheckpointError, load_model, match_state_dict, read_state_dict
from corridorkey_model.testing import green_screen_plate, plate_tensor, save_checkpoint


@pytest.fixture(scope="module")
def plate():
    return plate_tensor(green_screen_plate(72, 130, seed=5))


# ----------------------------------------------------------------------------- good files


def test_loads_strictly_and_computes_what_was_saved(loaded_model, synthetic_model, plate):
    for (k, a), (k2, b) in zip(loaded_model.state_dict().items(), synthetic_model.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    torch.testing.assert_close(key_frame(loaded_model, plate), key_frame(synthetic_model, plate), rtol=0, atol=0)
    assert not loaded_model.training


@pytest.mark.parametrize("layout", ["state_dict", "model_state_dict", "model", "compiled"])
def test_wrapped_and_compiled_layouts_read_to_the_same_state(tmp_path, synthetic_model, layout):
    path = save_checkpoint(synthetic_model, tmp_path / f"{layout}.pth", layout=layout, half=True)
    state = read_state_dict(path)
    expect = synthetic_model.state_dict()
    assert list(state) == list(expect)
    assert all(torch.equal(state[k], v.half() if v.is_floating_point() else v) for k, v in expect.items())


def test_safetensors_file_loads(tmp_path, synthetic_model):
    path = save_checkpoint(synthetic_model, tmp_path / "w.safetensors")
    model, info = load_model(path, img_size=SYNTH_SIZE)
    assert torch.equal(model.refiner.final.weight, synthetic_model.refiner.final.weight)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_at_512_resizes_pos_embed_bicubically(synthetic_checkpoint, synthetic_model, plate):
    model, info = load_model(synthetic_checkpoint, img_size=512)
    assert info.pos_embed_resized and info.checkpoint_img_size == SYNTH_SIZE and info.img_size == 512
    src = synthetic_model.state_dict()["encoder.model.pos_embed"]  # [1, 64*64, 112]
    grid = src.reshape(1, 64, 64, 112).permute(0, 3, 1, 2)
    expect = F.interpolate(grid, size=(128, 128), mode="bicubic", align_corners=False)
    got = model.state_dict()["encoder.model.pos_embed"].reshape(1, 128, 128, 112).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expect)
    # every other tensor is loaded untouched
    assert torch.equal(model.refiner.final.weight, synthetic_model.refiner.final.weight)
    full = key_frame(model, plate, refiner_strength=1.0)
    coarse = key_frame(model, plate, refiner_strength=0.0)
    assert torch.isfinite(full).all() and 0 <= full[:, 3].min() and full[:, 3].max() <= 1
    assert (full - coarse).abs().max() > 1e-2


def test_user_file_is_hashed_and_logged_as_not_released(synthetic_checkpoint, caplog):
    caplog.set_level(logging.INFO, logger="corridorkey_model.network.checkpoint")
    digest = ck.sha256_of(synthetic_checkpoint)
    assert digest == hashlib.sha256(Path(synthetic_checkpoint).read_bytes()).hexdigest()
    ck.check_file(Path(synthetic_checkpoint))
    # the hash decision without rebuilding the model
    assert digest != ck.RELEASED_SHA256
    _model, info = load_model(synthetic_checkpoint, img_size=SYNTH_SIZE)
    assert info.sha256 == digest and not info.is_released_file and info.source == "user path"
    assert "not the released file" in caplog.text


# ----------------------------------------------------------------------------- bad files


def test_missing_file_says_where_to_get_it(tmp_path):
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "CorridorKey_v1.0.pth", img_size=SYNTH_SIZE)
    msg = str(e.value)
    assert "not found" in msg and str(tmp_path) in msg
    assert "huggingface.co/nikopueringer/CorridorKey_v1.0" in msg and "--checkpoint" in msg


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory"):
        load_model(tmp_path, img_size=SYNTH_SIZE)


def test_git_lfs_pointer(tmp_path):
    path = tmp_path / "CorridorKey_v1.0.pth"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:a03827f5\nsize 398000000\n")
    with pytest.raises(CheckpointError, match="Git LFS pointer") as e:
        load_model(path, img_size=SYNTH_SIZE)
    assert "git lfs pull" in str(e.value)


def test_far_too_small_file(tmp_path):
    path = tmp_path / "CorridorKey_v1.0.pth"
    path.write_bytes(b"<html>502 Bad Gateway</html>")
    with pytest.raises(CheckpointError, match="far too small"):
        load_model(path, img_size=SYNTH_SIZE)


def test_truncated_file(tmp_path, synthetic_checkpoint):
    path = tmp_path / "truncated.pth"
    with open(synthetic_checkpoint, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read(os.path.getsize(synthetic_checkpoint) // 2))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_corrupt_safetensors(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(os.urandom(2 << 20))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        read_state_dict(path)


def test_pickled_python_objects_are_refused_safely(tmp_path, synthetic_model):
    import argparse

    path = tmp_path / "training.pth"
    state = {k: v.half() for k, v in synthetic_model.state_dict().items() if v.is_floating_point()}
    torch.save({"state_dict": state, "args": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(CheckpointError, match="Python objects besides tensors"):
        read_state_dict(path)


def test_training_state_without_model_weights(tmp_path):
    path = tmp_path / "optim.pth"
    torch.save({"optimizer": {"state": {0: {"exp_avg": torch.zeros(300_000)}}}, "epoch": 3}, path)
    with pytest.raises(CheckpointError, match="holds no model state dict") as e:
        read_state_dict(path)
    assert "'optimizer'" in str(e.value)


def test_missing_and_unexpected_keys_are_named(synthetic_model):
    state = dict(synthetic_model.state_dict())
    del state["refiner.final.weight"]
    del state["fg_decoder.classifier.bias"]
    state["refiner.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as e:
        match_state_dict(state, synthetic_model, "x.pth")
    msg = str(e.value)
    assert "2 missing key(s): fg_decoder.classifier.bias, refiner.final.weight" in msg
    assert "1 unexpected key(s): refiner.extra.weight" in msg
    assert "GreenFormer checkpoint of another architecture" in msg


def test_bare_hiera_backbone_is_recognised(synthetic_model):
    state = {k[len("encoder.model."):]: v for k, v in synthetic_model.state_dict().items()
             if k.startswith("encoder.model.")}
    with pytest.raises(CheckpointError, match="bare Hiera backbone"):
        match_state_dict(state, synthetic_model, "hiera.pth")


def test_shape_mismatch_other_than_pos_embed_is_an_error(synthetic_model):
    state = dict(synthetic_model.state_dict())
    state["fg_decoder.classifier.weight"] = torch.zeros(4, 256, 1, 1)
    with pytest.raises(CheckpointError, match=r"fg_decoder.classifier.weight \[4, 256, 1, 1\] \(expected \[3, 256, 1, 1\]\)"):
        match_state_dict(state, synthetic_model, "x.pth")


def test_unsupported_model_resolution(synthetic_checkpoint):
    with pytest.raises(CheckpointError, match="multiple of 32"):
        load_model(synthetic_checkpoint, img_size=1000)


# ----------------------------------------------------------------------------- the released file via the HF cache


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, and an endpoint that refuses connections at once."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


def put_in_cache(cache: Path, src: Path, repo_id: str = "nikopueringer/CorridorKey_v1.0",
                 filename: str = ck.RELEASED_FILENAME) -> Path:
    """Lay a file out as huggingface_hub's cache does (models--owner--name/refs/main, snapshots/<commit>/)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    dst = snap / filename
    os.symlink(src, dst)
    return dst


def test_offline_without_cached_file_fails_fast_with_instructions(hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        load_model(None, img_size=SYNTH_SIZE)
    msg = str(e.value)
    assert "HF_HUB_OFFLINE" in msg and "not in the Hugging Face cache" in msg
    assert "huggingface.co/nikopueringer/CorridorKey_v1.0" in msg


def test_unreachable_hub_fails_with_instructions(hf_cache):
    with pytest.raises(CheckpointError, match="the Hub cannot be reached") as e:
        load_model(None, img_size=SYNTH_SIZE)
    assert "--checkpoint PATH" in str(e.value)


def test_cached_file_is_found_offline_and_must_match_the_published_hash(hf_cache, monkeypatch, synthetic_checkpoint):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached = put_in_cache(hf_cache, Path(synthetic_checkpoint))
    with pytest.raises(CheckpointError, match="not the published") as e:
        load_model(None, img_size=SYNTH_SIZE)
    assert str(cached) in str(e.value)


def test_cached_file_with_the_published_hash_loads_offline(hf_cache, monkeypatch, synthetic_checkpoint):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    put_in_cache(hf_cache, Path(synthetic_checkpoint))
    # Stand in our synthetic file for the released one by publishing its hash.
    monkeypatch.setattr(ck, "RELEASED_SHA256", ck.sha256_of(synthetic_checkpoint))
    model, info = load_model(None, img_size=SYNTH_SIZE)
    assert info.source == "huggingface cache" and info.is_released_file
    assert info.path.endswith(ck.RELEASED_FILENAME)
    assert isinstance(model, torch.nn.Module)


@pytest.fixture(scope="module")
def synthetic_safetensors(synthetic_checkpoint, tmp_path_factory) -> Path:
    """The synthetic checkpoint saved as .safetensors (the format of the blue and green .safetensors files)."""
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("st") / "synthetic.safetensors"
    save_file({k: v.contiguous() for k, v in ck.read_state_dict(synthetic_checkpoint).items()}, str(path))
    return path


def test_blue_model_is_found_in_its_own_cache_repo_and_its_hash_recorded(hf_cache, monkeypatch,
                                                                          synthetic_safetensors, caplog):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    synthetic_checkpoint = synthetic_safetensors
    put_in_cache(hf_cache, Path(synthetic_checkpoint), "nikopueringer/CorridorKeyBlue_1.0",
                 "CorridorKeyBlue_1.0.safetensors")
    with caplog.at_level("INFO", logger="corridorkey_model.network.checkpoint"):
        _, info = load_model(None, img_size=SYNTH_SIZE, screen="blue")
    assert info.screen == "blue" and info.source == "huggingface cache"
    assert info.path.endswith("CorridorKeyBlue_1.0.safetensors") and not info.is_released_file
    assert info.sha256 == ck.sha256_of(synthetic_checkpoint)
    assert "blue-screen model" in caplog.text and info.sha256 in caplog.text and "no SHA-256 is published" in caplog.text
    # The green model is not in the cache: asking for it names the green files, not the blue one.
    with pytest.raises(CheckpointError) as e:
        load_model(None, img_size=SYNTH_SIZE)
    assert "CorridorKey_v1.0.pth" in str(e.value) and "CorridorKeyBlue" not in str(e.value)


def test_green_safetensors_is_found_when_the_pth_is_not_cached(hf_cache, monkeypatch, synthetic_safetensors):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    put_in_cache(hf_cache, Path(synthetic_safetensors), filename="CorridorKey_v1.0.safetensors")
    _, info = load_model(None, img_size=SYNTH_SIZE)
    assert info.screen == "green" and info.path.endswith("CorridorKey_v1.0.safetensors")


def test_missing_blue_model_says_where_the_blue_weights_are(hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        load_model(None, img_size=SYNTH_SIZE, screen="blue")
    assert "huggingface.co/nikopueringer/CorridorKeyBlue_1.0" in str(e.value)
    assert "CorridorKeyBlue_1.0.safetensors" in str(e.value)
