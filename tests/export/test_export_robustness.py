"""``export-torchscript`` under bad input, signals and full disks (issue #23 items 5, 7, 10, 11).

A manifest that is not the file's, a checkpoint path recorded relative, tolerances refused up
front, a .pth with flipped bytes inside a tensor, SIGTERM mid-export, a full disk, and the
TorchScript deprecation warnings silenced, nothing else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from repo_paths import REPO

from corridorkey_export.cli import main
from corridorkey_export.export import export_torchscript, manifest_path_for
from corridorkey_model.cli_support import TORCHSCRIPT_DEPRECATED, silence_torchscript_deprecation
from corridorkey_model.network.checkpoint import CheckpointError, load_model, read_state_dict
from corridorkey_model.testing import RANDOM_INIT_WARNING, make_random_model, save_checkpoint

S = 64


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --------------------------------------------------------------------------- quick: refused before any work


@pytest.mark.parametrize("option", ["--tolerance", "--fp16-tolerance"])
@pytest.mark.parametrize("value", ["-1", "nan", "inf"])
def test_bad_tolerances_are_usage_errors_before_any_work(tmp_path, option, value):
    out = tmp_path / "CorridorKey.pt"
    result = CliRunner().invoke(main, ["--random-init", "--img-size", str(S), "--validate", option, value,
                                       "-o", str(out)])
    assert result.exit_code == 2 and value in result.output, result.output
    assert RANDOM_INIT_WARNING not in result.output, "refused before the model is built"
    pt = tmp_path / "given.pt"
    pt.write_bytes(b"not read")
    result = CliRunner().invoke(main, ["validate", str(pt), option, value])
    assert result.exit_code == 2 and value in result.output, result.output


def test_only_torchscripts_deprecation_warnings_are_silenced():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_torchscript_deprecation()
        for name in TORCHSCRIPT_DEPRECATED:
            warnings.warn(f"`torch.jit.{name}` is deprecated. Please switch to `torch.export`.", FutureWarning, stacklevel=2)
        warnings.warn("`torch.jit.script_method` is deprecated.", FutureWarning, stacklevel=2)  # not one the CLI uses
        warnings.warn("`torch.jit.save` is deprecated.", DeprecationWarning, stacklevel=2)  # another category
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=2)
    shown = sorted(str(w.message) for w in seen)
    assert shown == ["`torch.jit.save` is deprecated.", "`torch.jit.script_method` is deprecated.",
                     "something else is deprecated"]


def test_the_cli_filter_names_what_pytest_filters():
    tomllib = pytest.importorskip("tomllib")
    filters = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["filterwarnings"]
    jit = sorted(f.split("`")[1].split(".")[-1] for f in filters if "torch.jit." in f)
    assert jit == sorted(TORCHSCRIPT_DEPRECATED)


# --------------------------------------------------------------------------- checkpoints: zip CRCs


def _flip_inside_the_largest_tensor(path: Path, nbytes: int = 4096) -> str:
    """Invert ``nbytes`` in the middle of the largest member's data (a tensor); return the member's name."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size > 4 * nbytes
    with open(path, "r+b") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
        start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        f.seek(start)
        data = bytes(b ^ 0xFF for b in f.read(nbytes))
        f.seek(start)
        f.write(data)
    return info.filename


@pytest.mark.slow
def test_a_pth_with_flipped_bytes_inside_a_tensor_is_reported_corrupt(tmp_path):
    path = save_checkpoint(make_random_model(S, seed=0), tmp_path / "weights.pth")
    read_state_dict(path)  # intact: reads
    member = _flip_inside_the_largest_tensor(path)
    assert zipfile.ZipFile(path).testzip() == member  # the oracle: Python's own CRC check
    with pytest.raises(CheckpointError, match="corrupt") as info:
        load_model(path, img_size=S)
    assert str(path) in str(info.value) and member in str(info.value)
    out = tmp_path / "out" / "CorridorKey.pt"
    result = CliRunner().invoke(main, ["--checkpoint", str(path), "--img-size", str(S), "-o", str(out)])
    assert result.exit_code == 1 and "corrupt" in result.output and not out.exists()


# --------------------------------------------------------------------------- validate and its manifest


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A random-weight checkpoint in its own folder, exported from there (the manifest records the path)."""
    folder = tmp_path_factory.mktemp("exported")
    ckpt = save_checkpoint(make_random_model(S, seed=3), folder / "weights.pth")
    model, info = load_model(ckpt, img_size=S)
    result = export_torchscript(model, folder / "CorridorKey.pt", checkpoint_info=info)
    return folder, ckpt, result


def _validate(*args):
    result = CliRunner().invoke(main, ["validate", *map(str, args), "--fp16", "off", "-q"])
    return result, result.output + (result.stderr if result.stderr_bytes is not None else "")


def test_manifest_records_the_checkpoint_absolute_and_validate_checks_the_files_hash(tmp_path, checkpoints,
                                                                                   monkeypatch):
    folder, ckpt, result = checkpoints
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["checkpoint"]["path"] == str(ckpt.absolute())
    monkeypatch.chdir(tmp_path)  # validate from anywhere: the recorded path is absolute
    ok, text = _validate(result.output)
    assert ok.exit_code == 0 and "PASSED" in text, text
    # another file under the same name, with the first one's manifest: refused, not a false mismatch
    other = tmp_path / "CorridorKey.pt"
    export_torchscript(make_random_model(S, seed=4), other, random_init_seed=4)
    shutil.copy(result.manifest_path, manifest_path_for(other))
    bad, text = _validate(other)
    assert bad.exit_code == 1 and "belongs to another export" in text and "does not match the reference" not in text


def test_an_old_relative_checkpoint_path_is_taken_from_the_manifests_folder(tmp_path, checkpoints, monkeypatch):
    folder, ckpt, result = checkpoints
    copy = tmp_path / "delivered"
    copy.mkdir()
    for p in (result.output, result.manifest_path, ckpt):
        shutil.copy(p, copy / p.name)
    manifest = json.loads((copy / result.manifest_path.name).read_text())
    manifest["checkpoint"]["path"] = ckpt.name  # what older exports recorded (relative to where they ran)
    (copy / result.manifest_path.name).write_text(json.dumps(manifest))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a fallback to the released weights would fail loudly
    ok, text = _validate(copy / result.output.name)
    assert ok.exit_code == 0 and "PASSED" in text, text
    # the recorded user checkpoint is gone: an error naming it, never a switch to other weights
    (copy / ckpt.name).unlink()
    bad, text = _validate(copy / result.output.name)
    assert bad.exit_code == 1 and ckpt.name in text and "--checkpoint" in text, text
    assert "Hugging Face" not in text


# --------------------------------------------------------------------------- SIGTERM, warnings, a full disk


@pytest.mark.slow
@pytest.mark.skipif(os.name == "nt", reason="SIGTERM is POSIX")
def test_sigterm_during_the_export_leaves_no_temporary_file_and_no_warning_noise(tmp_path):
    out = tmp_path / "CorridorKey.pt"
    proc = subprocess.Popen([sys.executable, "-c", "from corridorkey_export.cli import main; main()", "--random-init",
                             "--img-size", str(S),
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not list(tmp_path.glob(".CorridorKey.tmp-*.pt")):  # the save has begun
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 600
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == [], "no .pt, no manifest, no hidden temporary file"
    assert "is deprecated" not in stderr and "FutureWarning" not in stderr, stderr


@pytest.mark.slow
def test_a_full_disk_is_reported_as_full(small_disk):
    out = small_disk / "CorridorKey.pt"
    result = CliRunner().invoke(main, ["--random-init", "--img-size", str(S), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert "is full" in result.output and str(small_disk) in result.output
    assert list(small_disk.iterdir()) == []
