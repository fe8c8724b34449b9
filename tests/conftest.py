"""Shared fixtures: synthetic checkpoints with the released layout (random weights, NOT a keyer).

Models are expensive to build (~3 s at S=256 on 2 cores) and files are ~280 MB,
so they are made once per session.
"""

from __future__ import annotations

import logging
import os

# OpenCV is the tests' oracle for EXR too; its EXR codec is only on when this is set before cv2 loads.
os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
from pathlib import Path

import pytest
import torch
from repo_paths import SYNTH_SIZE

from corridorkey_model.network.checkpoint import load_model
from corridorkey_model.testing import make_random_model, save_checkpoint


@pytest.fixture(scope="session")
def synthetic_model():
    """A randomised GreenFormer at S=256, eval mode (seed 0)."""
    return make_random_model(SYNTH_SIZE, seed=0)


@pytest.fixture(scope="session")
def synthetic_checkpoint(tmp_path_factory, synthetic_model) -> Path:
    """``synthetic_model`` saved as a bare state dict ``.pth`` (the released file's layout)."""
    path = tmp_path_factory.mktemp("ckpt") / "synthetic_256.pth"
    return save_checkpoint(synthetic_model, path, layout="bare")


@pytest.fixture(scope="session")
def loaded_model(synthetic_checkpoint):
    """``synthetic_checkpoint`` loaded through the real loader at S=256."""
    logging.getLogger("corridorkey_model").setLevel(logging.WARNING)
    model, _info = load_model(synthetic_checkpoint, img_size=SYNTH_SIZE)
    return model


@pytest.fixture(autouse=True)
def _no_grad():
    with torch.no_grad():
        yield


#: Fixtures that build a network (seconds each): a test that uses one is slow. The session's
#: (above) and the module fixtures of that name in the test files (each builds its own network).
MODEL_FIXTURES = frozenset({"synthetic_model", "synthetic_checkpoint", "loaded_model",
                            "model", "ckpt", "checkpoints", "model64", "model_and_info"})


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` every test that needs a model fixture, so that ``-m "not slow"`` is really quick."""
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def small_disk(tmp_path):
    """A real, nearly full file system: a 256 KiB tmpfs mounted at ``tmp_path / "disk"`` (writes past it fail
    with ENOSPC). Needs the right to mount (root on Linux); skipped elsewhere."""
    import shutil
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if not sys.platform.startswith("linux") or shutil.which("mount") is None:
        pytest.skip("a small tmpfs needs Linux's mount")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
