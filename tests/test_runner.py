"""The ordered threaded runner: order, bounded memory, loud errors, clean Ctrl-C (no model needed)."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from corridorkey_model.runner import Stage, StageError, run_ordered


def _runner_threads():
    return [t for t in threading.enumerate() if t.name.startswith("corridorkey-")]


def _jitter(i: int, n: int) -> float:
    """Early items sleep longest, so they finish last on a multi-thread stage."""
    return 0.004 * (n - i) + (0.01 if i % 3 == 0 else 0.0)


def test_results_in_input_order_when_a_slow_stage_finishes_them_out_of_order():
    n = 24
    finished, committed = [], []
    lock = threading.Lock()

    def slow(i):
        time.sleep(_jitter(i, n))
        with lock:
            finished.append(i)
        return i

    stages = [Stage.threads("slow", slow, 4), Stage.threads("square", lambda i: (i, i * i), 2)]
    out = list(run_ordered(range(n), stages, commit=lambda r: committed.append(r[0])))
    assert finished != sorted(finished), "the jittered stage should finish items out of order"
    assert [r[0] for r in out] == list(range(n))
    assert [r[1] for r in out] == [i * i for i in range(n)]
    assert committed == list(range(n))
    assert not _runner_threads()


def test_each_worker_of_a_stage_is_used_one_callable_per_thread():
    seen = {"a": 0, "b": 0}

    def make(tag):
        def fn(i):
            time.sleep(0.005)
            seen[tag] += 1
            return i
        return fn

    out = list(run_ordered(range(20), [Stage("infer", (make("a"), make("b")))]))
    assert out == list(range(20))
    assert seen["a"] > 0 and seen["b"] > 0 and seen["a"] + seen["b"] == 20


def test_in_flight_items_are_bounded():
    alive, peak = [0], [0]
    lock = threading.Lock()

    def enter(i):
        with lock:
            alive[0] += 1
            peak[0] = max(peak[0], alive[0])
        if i == 0:
            time.sleep(0.3)  # the first item is slow: the others pile up behind it
        return i

    def leave(_):
        with lock:
            alive[0] -= 1

    out = list(run_ordered(range(60), [Stage.threads("a", enter, 3)], commit=leave, max_in_flight=5))
    assert out == list(range(60))
    assert peak[0] <= 5


def test_an_error_stops_the_run_and_names_the_item():
    processed, committed, discarded = [], [], []

    def stage(i):
        processed.append(i)
        if i == 5:
            raise ValueError("cannot decode")
        time.sleep(0.01)
        return i

    with pytest.raises(StageError) as info:
        list(run_ordered(range(200), [Stage.threads("reading", stage, 2), Stage.threads("w", lambda i: i, 2)],
                         label=lambda i: f"/clip/Input/{i:04d}.png", commit=committed.append,
                         discard=discarded.append))
    err = info.value
    assert "/clip/Input/0005.png" in str(err) and "cannot decode" in str(err) and "reading" in str(err)
    assert isinstance(err.cause, ValueError)
    assert len(processed) < 50, "the run must stop soon after the error"
    assert committed == list(range(len(committed))) and 5 not in committed
    assert not set(committed) & set(discarded)
    assert not _runner_threads()


def test_an_error_in_the_item_iterator_is_reported():
    def items():
        yield 0
        yield 1
        raise OSError("video ended early")

    with pytest.raises(StageError, match="video ended early"):
        list(run_ordered(items(), [Stage.threads("a", lambda i: i, 1)]))
    assert not _runner_threads()


def test_a_commit_error_stops_the_run():
    def commit(i):
        if i == 3:
            raise PermissionError("disk full")

    discarded = []
    with pytest.raises(StageError, match="disk full") as info:
        list(run_ordered(range(30), [Stage.threads("a", lambda i: i, 2)], commit=commit, label=str,
                         discard=discarded.append))
    assert info.value.label == "3" and 3 in discarded


def test_ctrl_c_shuts_down_cleanly_and_discards_what_was_not_committed():
    produced, committed, discarded = [], [], []
    lock = threading.Lock()

    def stage(i):
        time.sleep(0.01)
        if i == 8:
            _thread.interrupt_main()  # what Ctrl-C does to the main thread
        with lock:
            produced.append(i)
        return i

    with pytest.raises(KeyboardInterrupt):
        for _ in run_ordered(range(1000), [Stage.threads("a", stage, 3)], commit=committed.append,
                             discard=discarded.append):
            pass
    assert not _runner_threads()
    assert committed == list(range(len(committed)))
    assert len(produced) < 100
    # every result that left the last stage was either committed or cleaned up
    assert sorted(committed + discarded) == sorted(produced)
