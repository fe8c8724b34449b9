"""The output lock (corridorkey_model/pipeline/lock.py): two live runs never key the same frames of one folder.

The other run is a real second process holding a claim; a dead pid's lock is stale; another
host's lock blocks and says which file to delete.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from corridorkey_model.pipeline import lock
from corridorkey_model.pipeline.cli import main
from corridorkey_model.pipeline.lock import LOCK_DIR, OutputClaim, OutputLocked
from corridorkey_model.testing import RANDOM_INIT_WARNING

HOLDER = """
import sys, time
from corridorkey_model.pipeline.lock import OutputClaim
claim = OutputClaim.acquire(sys.argv[1], range(int(sys.argv[2]), int(sys.argv[3]) + 1), ["Matte"], [])
print("ready", flush=True)
sys.stdin.readline()
claim.release()
"""


@pytest.fixture
def holder(tmp_path):
    """Start a second process that claims frames FIRST-LAST of a folder until its stdin closes."""
    procs = []

    def start(folder: Path, first: int, last: int) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder), str(first), str(last)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=30)


def test_a_live_claim_on_the_same_frames_refuses_a_second_one(tmp_path, holder):
    out = tmp_path / "Output"
    other = holder(out, 1001, 1010)
    with pytest.raises(OutputLocked) as info:
        OutputClaim.acquire(out, range(1005, 1020), ["Matte"], [])
    text = str(info.value)
    assert f"pid {other.pid} on this host" in text
    assert str(out / LOCK_DIR) in text and "1005-1010" in text
    assert len(list((out / LOCK_DIR).glob("*.json"))) == 1, "the refused claim leaves no lock behind"
    claim = OutputClaim.acquire(out, range(1011, 1020), ["Matte"], [])  # other frames: a farm's next chunk
    claim.release()
    other.stdin.close()
    other.wait(timeout=30)
    OutputClaim.acquire(out, range(1001, 1010), ["Matte"], []).release()  # released: free again
    assert not (out / LOCK_DIR).exists()


def test_a_dead_processs_lock_is_stale_and_removed(tmp_path, caplog):
    out = tmp_path / "Output"
    (out / LOCK_DIR).mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / LOCK_DIR / f"{lock.this_host()}.{dead.pid}.json"
    stale.write_text(json.dumps({"host": lock.this_host(), "pid": dead.pid, "frames": [[1, 100]]}))
    claim = OutputClaim.acquire(out, [5], ["Matte"], [])
    assert not stale.exists() and "stale" in caplog.text
    claim.release()


def test_another_hosts_lock_blocks_and_names_the_file_to_delete(tmp_path):
    out = tmp_path / "Output"
    (out / LOCK_DIR).mkdir(parents=True)
    theirs = out / LOCK_DIR / "render-node-7.4242.json"
    theirs.write_text(json.dumps({"host": "render-node-7", "pid": 4242, "started": "2026-01-01T10:00:00",
                                  "frames": [[1, 100]]}))
    with pytest.raises(OutputLocked, match="host render-node-7") as info:
        OutputClaim.acquire(out, [5], ["Matte"], [])
    assert f"delete {theirs}" in str(info.value)
    assert theirs.exists()


def test_corridorkey_run_refuses_frames_a_live_run_holds(tmp_path, holder):
    root = tmp_path / "Shot"
    for folder, name in (("Input", "shot.1001.png"), ("AlphaHint", "hint.png")):
        (root / folder).mkdir(parents=True)
        cv2.imwrite(str(root / folder / name), np.zeros((32, 48, 3), np.uint8))
    other = holder(root / "Output", 1001, 1001)
    t0 = time.monotonic()
    result = CliRunner().invoke(main, ["run", str(root), "--random-init", "--img-size", "64", "--device", "cpu"])
    assert result.exit_code == 1 and f"pid {other.pid}" in result.output, result.output
    assert time.monotonic() - t0 < 30, "it fails at once, it does not wait"
    assert RANDOM_INIT_WARNING not in result.output, "refused before any model is built"
    assert not any((root / "Output" / "Matte").iterdir())


def test_pid_alive():
    assert lock.pid_alive(os.getpid())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not lock.pid_alive(dead.pid) and not lock.pid_alive(0)


def test_a_lock_left_under_our_own_pid_is_an_earlier_process_and_is_replaced(tmp_path):
    out = tmp_path / "Output"
    (out / LOCK_DIR).mkdir(parents=True)
    mine = out / LOCK_DIR / f"{lock.this_host()}.{os.getpid()}.json"
    mine.write_text(json.dumps({"host": lock.this_host(), "pid": os.getpid(), "frames": [[1, 9]]}))
    claim = OutputClaim.acquire(out, [5], ["Matte"], [])
    assert json.loads(mine.read_text())["frames"] == [[5, 5]]
    claim.release()
    assert not mine.exists()


@pytest.mark.parametrize("content", ['{"host": "h", "pid": 1, "frames": "all"}',
                                     '{"host": "h", "pid": 1, "frames": [[1001]]}',
                                     '{"host": "h", "pid": 1, "frames": [[1010, 1001]]}',
                                     '{"host": "h", "pid": 1, "frames": [["a", "b"]]}',
                                     '[1, 2]', '{"host": "h", "pid": 1, "fr', ''])
def test_an_odd_lock_file_is_ignored_with_a_warning_naming_it(tmp_path, caplog, content):
    """Issue #31 defect 11: a lock whose frames were "all" or [[1001]] raised a ValueError from _overlap."""
    out = tmp_path / "Output"
    (out / LOCK_DIR).mkdir(parents=True)
    odd = out / LOCK_DIR / "h.1.json"
    odd.write_text(content)
    OutputClaim.acquire(out, [1001], ["Matte"], []).release()
    assert f"unreadable lock file {odd}" in caplog.text and "delete it" in caplog.text
