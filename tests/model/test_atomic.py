"""The one atomic-write helper: a file appears complete under its final name, or not at all."""

from __future__ import annotations

import os
import stat

import pytest

from corridorkey_export import nuke_files
from corridorkey_model import atomic


class _Boom(Exception):
    pass


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_temp_path_is_a_new_hidden_file_beside_the_target_with_its_extension(tmp_path):
    target = tmp_path / "shot.1001.exr"
    a, b = atomic.temp_path_for(target), atomic.temp_path_for(target)
    assert a != b
    for tmp in (a, b):
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".exr"
        assert atomic.TEMP_MARK in tmp.name and tmp.is_file() and tmp.stat().st_size == 0
    assert not target.exists()


def test_write_bytes_writes_the_file_with_ordinary_permissions_and_no_temp_left(tmp_path):
    path = tmp_path / "CorridorKey.gizmo"
    atomic.write_bytes(path, b"Gizmo {}\n")
    assert path.read_bytes() == b"Gizmo {}\n"
    assert _names(tmp_path) == ["CorridorKey.gizmo"]
    plain = tmp_path / "plain"
    with open(plain, "wb"):
        pass
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # not mkstemp's 0600


def test_a_failure_mid_write_leaves_no_file_and_no_temp_file(tmp_path):
    path = tmp_path / "CorridorKey.pt"
    with pytest.raises(_Boom):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"half of a file")
            raise _Boom()
    assert _names(tmp_path) == []


def test_ctrl_c_mid_write_also_cleans_up(tmp_path):
    path = tmp_path / "CorridorKey.pt"
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert _names(tmp_path) == []


def test_an_existing_file_is_replaced_only_on_success(tmp_path):
    path = tmp_path / "cat.json"
    path.write_bytes(b"old")
    with pytest.raises(_Boom):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"new but unfinished")
            raise _Boom()
    assert path.read_bytes() == b"old" and _names(tmp_path) == ["cat.json"]
    with atomic.atomic_path(path) as tmp:
        tmp.write_bytes(b"new")
        assert path.read_bytes() == b"old"  # not visible before the block ends
    assert path.read_bytes() == b"new" and _names(tmp_path) == ["cat.json"]


def test_a_missing_folder_is_an_oserror_and_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "missing" / "f.txt", b"x")
    (tmp_path / "blocker").write_text("a file where a folder should be")
    with pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "blocker" / "f.txt", b"x")
    assert _names(tmp_path) == ["blocker"]


def test_a_failed_rename_leaves_the_target_and_no_temp_file(tmp_path):
    (tmp_path / "taken").mkdir()  # a directory where the file should go: os.replace fails
    (tmp_path / "taken" / "inside").write_text("keep")
    with pytest.raises(OSError):
        atomic.write_bytes(tmp_path / "taken", b"x")
    assert _names(tmp_path) == ["taken"] and (tmp_path / "taken" / "inside").read_text() == "keep"


def test_discard_ignores_a_missing_file(tmp_path):
    atomic.discard(tmp_path / "never-made")
    tmp = atomic.temp_path_for(tmp_path / "f.png")
    atomic.discard(tmp)
    assert _names(tmp_path) == []


def test_nuke_files_write_goes_through_the_helper(tmp_path, monkeypatch):
    path = tmp_path / "new" / "folder" / "menu.py"
    nuke_files._atomic_write(path, b"print('hi')\n")
    assert path.read_bytes() == b"print('hi')\n" and _names(path.parent) == ["menu.py"]

    def broken_fsync(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        nuke_files._atomic_write(path, b"something else")
    assert path.read_bytes() == b"print('hi')\n" and _names(path.parent) == ["menu.py"]
