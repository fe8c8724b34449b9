"""Claiming a clip's output folder: frame locks, stale temporary files, folders made by a failed run.

Two ``corridorkey run`` processes keying the same frames of the same ``Output/`` would
mix their frames (say ``--despill 0`` and ``--despill 10``), and a farm retry while the
first task still runs does the same. So a run *claims* the frames it keys::

    claim = OutputClaim.acquire(output_dir, frames=(1001, 1050), names=[...])  # or OutputLocked
    ...                                                                         # key the frames
    claim.release(failed=False)

The lock is a small JSON file in ``OUTPUT/.corridorkey-locks/``, one per run, named
after the host and pid, holding the host, pid, start time, command line and the frame
numbers claimed. Frame ranges, not the whole folder: the farm's chunks of one clip
(``corridorkey farm-job``) run at the same time on one ``Output/``, each on its own
frames. Acquiring writes our file first (``O_EXCL``), then reads every other one; if any
live one claims one of our frames, ours is removed and :class:`OutputLocked` names the
other's file, host and pid. Two runs that start together may both refuse (never both
proceed).

A lock is *stale* when its host is this host and its pid is no longer running (a run
killed with SIGKILL, or a crashed machine that rebooted under the same name): it is
removed with a warning and does not block. A lock from **another host** cannot be
checked from here and blocks until it is removed; the message says which file to
delete once that run is known to be gone (docs/pipeline.md).

Once the frames are ours, no other live writer can be writing them, so
:meth:`OutputClaim.acquire` deletes the hidden temporary files (``.NAME.tmp-XXXXXXXX.EXT``,
:mod:`corridorkey_model.atomic`) that a killed run left for *those* frames, and only
those: a concurrent writer of other frames keeps its own.

Folders the claim creates (``Output/`` and its ``Matte/`` ... ``Comp/``) are removed
again by ``release(failed=True)`` when they are still empty, so a run that fails before
writing a frame (out of memory, say) leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from corridorkey_model.atomic import TEMP_MARK

log = logging.getLogger(__name__)

#: Folder of the lock files, inside the clip's output folder.
LOCK_DIR = ".corridorkey-locks"
#: A temporary file of :func:`corridorkey_model.atomic.temp_path_for`: ``.<stem>.tmp-<8 hex><suffix>``.
TEMP_NAME = re.compile(r"^\.(?P<stem>.+)" + re.escape(TEMP_MARK) + r"[0-9a-f]{8}(?P<suffix>\.[^.]*)?$")


class OutputLocked(Exception):
    """Another live run holds some of the frames; the message names its lock file, host and pid."""


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (signal 0: nothing is sent)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would terminate it there
        import ctypes

        handle = ctypes.windll.kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        ctypes.windll.kernel32.CloseHandle(handle)
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def this_host() -> str:
    return socket.gethostname()


def _ranges(numbers: Iterable[int]) -> List[Tuple[int, int]]:
    """Sorted frame numbers as ``[(first, last), ...]`` runs (a compact record of a selection)."""
    out: List[Tuple[int, int]] = []
    for n in sorted(set(numbers)):
        if out and n == out[-1][1] + 1:
            out[-1] = (out[-1][0], n)
        else:
            out.append((n, n))
    return out


def _overlap(a: Sequence[Sequence[int]], b: Sequence[Sequence[int]]) -> Optional[Tuple[int, int]]:
    """First ``(first, last)`` shared by two range lists, or None."""
    for a0, a1 in a:
        for b0, b1 in b:
            lo, hi = max(a0, b0), min(a1, b1)
            if lo <= hi:
                return lo, hi
    return None


def _parse_ranges(value: object) -> List[Tuple[int, int]]:
    """A lock file's ``frames``: a list of ``[first, last]`` integer pairs, first <= last; else ValueError."""
    if not isinstance(value, list):
        raise ValueError(f"frames is {value!r}, not a list of [first, last] ranges")
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not all(type(n) is int for n in item)
                or item[0] > item[1]):
            raise ValueError(f"frames holds {item!r}, not a [first, last] range")
        out.append((item[0], item[1]))
    return out


def _describe(ranges: Sequence[Sequence[int]]) -> str:
    return ", ".join(f"{r[0]}" if r[0] == r[1] else f"{r[0]}-{r[1]}" for r in ranges)


def _make_dirs(folder: Path, created: List[Path]) -> None:
    """``mkdir -p folder``, remembering (in ``created``, outermost first) each folder made here."""
    missing = []
    p = folder
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for p in reversed(missing):
        try:
            p.mkdir()
        except FileExistsError:
            continue
        created.append(p)


@dataclass
class OutputClaim:
    """A run's claim on some frames of one output folder (see the module doc)."""

    output_dir: Path
    lock_path: Path
    ranges: List[Tuple[int, int]]
    created: List[Path] = field(default_factory=list)
    swept: int = 0
    folders: List[Path] = field(default_factory=list)
    new_files: List[Path] = field(default_factory=list)

    @classmethod
    def acquire(cls, output_dir: Path, numbers: Iterable[int], folders: Sequence[str] = (),
                names: Iterable[str] = ()) -> OutputClaim:
        """Claim frames ``numbers`` of ``output_dir``; make its sub-``folders``; sweep stale temporaries of ``names``.

        Raises :class:`OutputLocked` when a live run holds one of the frames, ``OSError``
        when the folder cannot be written.
        """
        output_dir = Path(output_dir)
        created: List[Path] = []
        ranges = _ranges(numbers)
        try:
            _make_dirs(output_dir / LOCK_DIR, created)
            lock_path = output_dir / LOCK_DIR / f"{_safe(this_host())}.{os.getpid()}.json"
            record = {"host": this_host(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "command": " ".join(sys.argv), "frames": ranges}
            try:
                fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:  # our own host and pid: a stale lock of an earlier process (pid reused)
                log.warning("removing the stale lock %s (an earlier process with this pid)", lock_path)
                _unlink(lock_path)
                fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f)
            claim = cls(output_dir, lock_path, ranges, created)
        except BaseException:
            _remove_empty(created)
            raise
        try:
            claim._check_others()
            for name in folders:
                claim.folders.append(output_dir / name)
                _make_dirs(output_dir / name, claim.created)
            claim.swept = sweep_temporaries([output_dir / name for name in folders], set(names))
        except BaseException:
            claim.release(failed=True)
            raise
        return claim

    def _check_others(self) -> None:
        for other in sorted((self.output_dir / LOCK_DIR).glob("*.json")):
            if other == self.lock_path:
                continue
            try:
                info = json.loads(other.read_text())
                host, pid, frames = str(info["host"]), int(info["pid"]), _parse_ranges(info["frames"])
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                log.warning("ignoring the unreadable lock file %s (%s: %s): it is not one a corridorkey run "
                            "writes (truncated or edited). If no other run is writing this clip's frames, delete "
                            "it", other, type(exc).__name__, exc)
                continue
            if host == this_host() and not pid_alive(pid):
                log.warning("removing the stale lock %s: process %d on this host (%s) is no longer running",
                            other, pid, host)
                _unlink(other)
                continue
            shared = _overlap(self.ranges, frames)
            if shared is None:
                continue
            where = "this host" if host == this_host() else f"host {host}"
            raise OutputLocked(
                f"{self.output_dir} is being written by another corridorkey run (pid {pid} on {where}, started "
                f"{info.get('started', '?')}, frames {_describe(frames)}; lock {other}). Frames "
                f"{_describe([shared])} would mix the two runs' results: wait for it to finish, or choose another "
                f"--output or --frames. If that run is gone (its machine crashed), delete {other} and run again."
            )

    def add_new_file(self, path: Path) -> None:
        """A file this run made beside the frames (the settings record): removed by a failed run that wrote no frame."""
        self.new_files.append(Path(path))

    def release(self, failed: bool = False) -> None:
        """Drop the lock; after a failure that left the output folders empty, also remove what this claim made
        there (:meth:`add_new_file`'s files, then the folders it created)."""
        _unlink(self.lock_path)
        if failed and not any(_has_entries(f) for f in self.folders):
            for path in self.new_files:
                _unlink(path)
        lock_dir = self.lock_path.parent
        try:
            lock_dir.rmdir()  # only when no other run's lock is in it
        except OSError:
            pass
        if failed:
            _remove_empty(self.created)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text) or "host"


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s: %s", path, exc)


def _has_entries(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(True for _ in it)
    except OSError:
        return False


def _remove_empty(created: Sequence[Path]) -> None:
    """Remove the folders in ``created`` (outermost first) that are empty, innermost first."""
    for p in sorted(created, key=lambda q: len(q.parts), reverse=True):
        try:
            p.rmdir()
        except OSError:
            pass


def sweep_temporaries(folders: Sequence[Path], stems: Set[str]) -> int:
    """Delete the hidden temporary files of ``stems`` (a killed run's partial frames) in ``folders``; return how many.

    Only names of :func:`corridorkey_model.atomic.temp_path_for`'s pattern whose stem is in
    ``stems`` are touched: the caller holds the lock on those frames, so no live writer owns them.
    """
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            m = TEMP_NAME.match(entry.name)
            if m is None or m.group("stem") not in stems or not entry.is_file(follow_symlinks=False):
                continue
            _unlink(Path(entry.path))
            removed += 1
    if removed:
        log.info("removed %d temporary file(s) left by an earlier, killed run in %s", removed,
                 ", ".join(str(f) for f in folders))
    return removed


def names_in(paths: Dict[str, Path]) -> List[str]:
    """The stems of a frame's output files (for :func:`sweep_temporaries`)."""
    return sorted({p.stem for p in paths.values()})
