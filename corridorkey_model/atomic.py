"""Atomic file writes: a file appears under its final name complete, or not at all.

Every file the project writes (keyed frames, ``CorridorKey.pt`` and its
manifest, the generated Nuke files) goes through here:

1. :func:`temp_path_for` reserves a hidden temporary file *in the target's
   folder* (so the final rename never crosses a file system), named
   ``.<stem>.tmp-<random><suffix>``: it keeps the extension, because some
   writers (OpenCV) pick the format by it;
2. the caller writes it;
3. :func:`commit` renames it onto the final name with ``os.replace`` (atomic
   on POSIX and Windows, and it replaces an existing file), or
   :func:`discard` deletes it.

:func:`atomic_path` does the three steps as a context manager, and
:func:`write_bytes` writes bytes with it. A writer that keeps several files
back until a later decision (the pipeline commits a frame's four outputs in
frame order) uses the three functions directly.

The temporary file is created with mode ``0o666`` minus the umask, as a plain
``open()`` would, so the final file gets ordinary permissions.

:func:`why_write_failed` turns a failed write into the reason a user can act on:
a full disk (``ENOSPC``, or almost no space left where a writer such as OpenCV
only says it failed), a quota, a read-only file system, missing permissions.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import Iterator, Optional, Union

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

#: Marker in every temporary name (``.<stem>.tmp-<random><suffix>``).
TEMP_MARK = ".tmp-"
_ATTEMPTS = 100


def temp_path_for(path: PathLike) -> Path:
    """Create an empty hidden temporary file beside ``path`` with the same extension; return its path.

    Raises ``OSError`` when the folder does not exist or cannot be written.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(_ATTEMPTS):
        tmp = path.with_name(f".{path.stem}{TEMP_MARK}{secrets.token_hex(4)}{path.suffix}")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for open()
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path} after {_ATTEMPTS} attempts")


def commit(tmp: PathLike, path: PathLike) -> None:
    """Move the finished temporary file ``tmp`` onto ``path`` (atomically replacing any file there)."""
    os.replace(tmp, path)


def discard(tmp: PathLike) -> None:
    """Delete the temporary file ``tmp`` if it is there (a failure to do so is logged, not raised)."""
    try:
        os.unlink(tmp)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        log.warning("could not remove the temporary file %s: %s", tmp, exc)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on any failure removed.

    ::

        with atomic_path("out/CorridorKey.pt") as tmp:
            torch.jit.save(module, str(tmp))   # an exception here leaves no file at all

    An existing ``path`` is replaced only when the block succeeds.
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        yield tmp
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


#: Below this much free space a failed write is reported as a full disk (writers such as OpenCV
#: and libpng report only that the write failed, not why).
NEARLY_FULL_BYTES = 1 << 20


def free_bytes(folder: PathLike) -> Optional[int]:
    """Free space of the file system holding ``folder`` (its nearest existing parent), or None."""
    p = Path(folder).absolute()
    while not p.exists() and p.parent != p:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def why_write_failed(path: PathLike, exc: Optional[BaseException] = None, needed: int = 0) -> str:
    """Why writing ``path`` failed, in words a user can act on (``exc``: the error, if any; ``needed``: bytes).

    ``ENOSPC``, or less free space than ``max(needed, NEARLY_FULL_BYTES)`` when the
    writer gave no reason, is a full disk; ``EDQUOT`` a quota; ``EROFS`` a read-only
    file system; ``EACCES`` / ``EPERM`` missing permissions.
    """
    folder = Path(path).parent
    code = getattr(exc, "errno", None)
    free = free_bytes(folder)
    if code == errno.ENOSPC or (code is None and free is not None and free < max(needed, NEARLY_FULL_BYTES)):
        left = f"{free} bytes free" if free is not None else "no space left"
        return f"the disk holding {folder} is full ({left}); free some space or write elsewhere"
    if code == getattr(errno, "EDQUOT", -1):
        return f"your disk quota on the file system holding {folder} is used up; free some space or write elsewhere"
    if code == errno.EROFS:
        return f"{folder} is on a read-only file system; write elsewhere"
    if code in (errno.EACCES, errno.EPERM):
        return f"permission denied in {folder}; fix its permissions or write elsewhere"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}"
    return f"{exc}" if exc is not None else "the write failed (is its folder writable?)"


__all__ = ["temp_path_for", "commit", "discard", "atomic_path", "write_bytes", "TEMP_MARK", "why_write_failed",
           "free_bytes"]
