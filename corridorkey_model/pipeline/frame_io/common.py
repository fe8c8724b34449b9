"""What the image and video halves of :mod:`corridorkey_model.pipeline.frame_io` share: errors, atomic files."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Optional

import numpy as np

from corridorkey_model import atomic


class FrameReadError(Exception):
    """A frame or video could not be read; the message names the file (and the frame of a video)."""


class FrameWriteError(Exception):
    """A frame or video could not be written; the message names the file."""


def temp_path_for(path: Path) -> Path:
    """A new, empty hidden temporary file next to ``path`` with the same extension (the codec is picked by it)."""
    try:
        return atomic.temp_path_for(path)
    except OSError as exc:
        why = atomic.why_write_failed(path, exc)
        if exc.errno == errno.ENOENT:
            why = f"its folder {path.parent} does not exist"
        raise FrameWriteError(f"cannot write {path}: {why}") from exc


def why_encoder_failed(path: Path, data: np.ndarray) -> Optional[str]:
    """An encoder that says only that a write failed: a full disk is told apart by the space left, else None.

    Call it before the partial temporary file is removed: its space counts.
    """
    free = atomic.free_bytes(Path(path).parent)
    if free is not None and free < max(int(data.nbytes), atomic.NEARLY_FULL_BYTES):
        return atomic.why_write_failed(path, None, int(data.nbytes))
    return None


#: Move a finished temporary file onto its final name (atomic ``os.replace``).
commit = atomic.commit
#: Delete a temporary file if it is there.
discard = atomic.discard


def commit_or_discard(tmp: Path, path: Path) -> None:
    """``commit`` ``tmp`` onto ``path``; on any failure the temporary file is removed and the error names ``path``."""
    try:
        commit(tmp, Path(path))
    except BaseException as exc:
        discard(tmp)
        if isinstance(exc, OSError):
            raise FrameWriteError(f"cannot write {path}: {atomic.why_write_failed(path, exc)}") from exc
        raise


def check_writable(folder: Path) -> None:
    """Create ``folder`` and prove a file can be written and removed there, else :class:`FrameWriteError`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = atomic.temp_path_for(folder / "write-probe")
        try:
            with open(probe, "wb") as f:
                f.write(b"ok")
        finally:
            os.unlink(probe)
    except OSError as exc:
        raise FrameWriteError(
            f"output folder {folder} is not writable ({atomic.why_write_failed(folder / 'x', exc)}); choose "
            f"another place with --output if that cannot be fixed"
        ) from exc


def check_can_create(folder: Path) -> None:
    """Without creating anything: :class:`FrameWriteError` if ``folder`` is not, and cannot be made, a writable
    folder (its nearest existing part is a file, or is not writable). The cheap check before a model loads."""
    folder = Path(folder)
    p = folder.absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    if not p.is_dir():
        raise FrameWriteError(f"output folder {folder} is not writable ({p} is a file, not a folder); move it away "
                              f"or choose another place with --output")
    if on_read_only_file_system(p):  # os.access alone cannot tell a read-only disk from missing permissions
        raise FrameWriteError(f"output folder {folder} is not writable ({p} is on a read-only file system); "
                              f"choose another place with --output")
    if not os.access(p, os.W_OK | os.X_OK):
        raise FrameWriteError(f"output folder {folder} is not writable (permission denied in {p}); fix its "
                              f"permissions or choose another place with --output")


def on_read_only_file_system(path: Path) -> bool:
    """Whether ``path`` lies on a file system mounted read-only (``statvfs``'s ``ST_RDONLY``; False if unknown)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows) or an unreadable path: the other checks decide
        return False
