"""What the image and video halves of :mod:`corridorkey_model.pipeline.frame_io` share: errors, atomic files."""

from __future__ import annotations

import os
from pathlib import Path

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
        raise FrameWriteError(f"cannot write {path}: {exc.strerror or exc} (does its folder exist and is it "
                              f"writable?)") from exc


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
            raise FrameWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc
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
            f"output folder {folder} is not writable ({exc.strerror or exc}); fix its permissions or "
            f"choose another place with --output"
        ) from exc
