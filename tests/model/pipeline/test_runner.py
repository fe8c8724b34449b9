"""The ordered threaded runner: order, bounded memory, loud errors, clean Ctrl-C (no model needed)."""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
import time

import pytest

from corridorkey_model.pipeline.runner import Stage, StageError, run_ordered


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
    assert committed == [0, 1, 2, 3, 4], "every item before the failed one is committed"
    assert not set(committed) & set(discarded)
    assert not _runner_threads()


def test_items_before_a_failure_are_finished_and_committed_items_after_it_discarded():
    """Item 5 fails while 0-4 are still in flight and 6, 7 (and more) have already finished out of order."""
    n_workers = 8
    after_five = threading.Event()  # 6 and 7 have left the last stage
    five_failed = threading.Event()
    lock = threading.Lock()
    produced, committed, discarded, events = [], [], [], []

    def first(i):
        if i < 5:
            assert five_failed.wait(10), "item 5 never failed"
            time.sleep(0.05)  # still in flight well after the failure
        elif i == 5:
            assert after_five.wait(10), "items 6 and 7 never finished"
            with lock:
                events.append("5 failed")
            five_failed.set()
            raise RuntimeError("corrupt frame")
        return i

    def last(i):
        with lock:
            produced.append(i)
            events.append(f"{i} done")
            if {6, 7} <= set(produced):
                after_five.set()
        return i

    with pytest.raises(StageError, match="corrupt frame") as info:
        list(run_ordered(range(40), [Stage.threads("infer", first, n_workers), Stage.threads("write", last, 2)],
                         commit=committed.append, discard=discarded.append))
    assert info.value.label == "5" and info.value.stage == "infer"
    assert events.index("6 done") < events.index("5 failed") < events.index("0 done")  # the scenario happened
    assert committed == [0, 1, 2, 3, 4]
    assert {6, 7} <= set(discarded) and not set(committed) & set(discarded)
    assert sorted(committed + discarded) == sorted(produced), "every result is committed or discarded, once"
    assert not _runner_threads()


def test_the_earliest_failed_item_wins_when_several_fail():
    seven_failed = threading.Event()
    committed = []

    def stage(i):
        if i == 7:
            seven_failed.set()
            raise ValueError("seven")
        if i == 3:
            assert seven_failed.wait(10)
            time.sleep(0.05)
            raise ValueError("three")
        return i

    with pytest.raises(StageError, match="three") as info:
        list(run_ordered(range(20), [Stage.threads("a", stage, 8)], commit=committed.append))
    assert info.value.label == "3"
    assert committed == [0, 1, 2]
    assert not _runner_threads()


def test_an_error_in_the_item_iterator_is_reported():
    def items():
        yield 0
        yield 1
        raise OSError("video ended early")

    committed = []
    with pytest.raises(StageError, match="video ended early"):
        list(run_ordered(items(), [Stage.threads("a", lambda i: i, 1)], commit=committed.append))
    assert committed == [0, 1]
    assert not _runner_threads()


def test_a_commit_error_stops_the_run():
    committed = []

    def commit(i):
        if i == 3:
            raise PermissionError("disk full")
        committed.append(i)

    discarded = []
    with pytest.raises(StageError, match="disk full") as info:
        list(run_ordered(range(30), [Stage.threads("a", lambda i: i, 2)], commit=commit, label=str,
                         discard=discarded.append))
    assert info.value.label == "3" and 3 in discarded
    assert committed == [0, 1, 2]


@contextlib.contextmanager
def _python_handles_sigint():
    """SIGINT raises KeyboardInterrupt for the block, whatever disposition the process inherited.

    A background job (``cmd &``, nohup, some CI runners) starts with SIGINT ignored, and then
    ``_thread.interrupt_main()`` does nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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

    with _python_handles_sigint(), pytest.raises(KeyboardInterrupt):
        for _ in run_ordered(range(1000), [Stage.threads("a", stage, 3)], commit=committed.append,
                             discard=discarded.append):
            pass
    assert not _runner_threads()
    assert committed == list(range(len(committed)))
    assert len(produced) < 100
    # every result that left the last stage was either committed or cleaned up
    assert sorted(committed + discarded) == sorted(produced)


def test_ctrl_c_while_finishing_the_items_before_a_failure_stops_at_once():
    committed, discarded = [], []

    def stage(i):
        if i == 2:
            raise ValueError("bad frame")
        if i == 0:  # still in flight after item 2 failed; the user presses Ctrl-C meanwhile
            time.sleep(0.2)
            _thread.interrupt_main()
            time.sleep(0.3)
        return i

    with _python_handles_sigint(), pytest.raises(KeyboardInterrupt):
        list(run_ordered(range(10), [Stage.threads("a", stage, 3)], commit=committed.append,
                         discard=discarded.append))
    assert committed == [] and sorted(discarded) == [0, 1]
    assert not _runner_threads()
