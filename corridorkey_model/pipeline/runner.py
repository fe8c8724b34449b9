"""A bounded-queue threaded runner that keeps order and fails loudly.

Items flow through stages (each a few worker threads joined by bounded
queues); results may finish out of order, but the main thread ``commit``s and
yields them strictly in input order. At most ``max_in_flight`` items are
between the feeder and the commit, so memory stays bounded however slow the
first frame is.

* An exception in any stage (or in the item iterator, or in ``commit``) on
  item *k* stops the run **at** *k*: nothing new is fed, the items before *k*
  that are still in flight are finished and committed (they are complete and
  correct, so a rerun resumes after them), *k* and every item after it are
  ``discard``ed even if they finished early, and :class:`StageError` is raised
  naming item *k* (the frame's path) and the stage. When several items fail,
  the run stops at the earliest one in input order; the others are logged.
* Ctrl-C (``KeyboardInterrupt`` in the main thread) stops at once: nothing
  more is committed, every result not yet committed is ``discard``ed, and the
  interrupt is re-raised, so nothing half-written is left behind.

The runner knows nothing about frames; :mod:`corridorkey_model.pipeline.stages` gives
it the stages.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

#: How often blocked threads look at the stop flag (seconds).
POLL_S = 0.05
#: How long the clean-up waits for a busy worker (e.g. one inside a long inference call).
JOIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``workers`` holds one callable per thread (e.g. one per device)."""

    name: str
    workers: Tuple[Callable[[Any], Any], ...]

    @staticmethod
    def threads(name: str, fn: Callable[[Any], Any], count: int) -> Stage:
        """A stage running ``fn`` on ``count`` threads."""
        if count < 1:
            raise ValueError(f"stage {name}: needs at least one thread, got {count}")
        return Stage(name, tuple([fn] * count))


class StageError(Exception):
    """A stage failed on an item; ``label`` names the item (the frame's path), ``stage`` the step."""

    def __init__(self, label: str, stage: str, cause: BaseException) -> None:
        self.label = label
        self.stage = stage
        self.cause = cause
        text = str(cause) or type(cause).__name__
        super().__init__(f"{stage} failed on {label}: {text}")


def _noop(_: Any) -> None:
    return None


class _Run:
    """The threads and queues of one :func:`run_ordered` call.

    ``stop`` ends every thread at once (Ctrl-C, or the run is over). ``error_seq``
    is the earliest failed item: items before it still flow, later ones are dropped.
    """

    def __init__(self, stages: Sequence[Stage], label: Callable[[Any], str], discard: Callable[[Any], None],
                 queue_size: int, max_in_flight: int) -> None:
        self.stages = list(stages)
        self.label = label
        self.discard = discard
        self.stop = threading.Event()
        self.error: Optional[StageError] = None
        self.error_seq: Optional[int] = None
        self.lock = threading.Lock()
        self.queues: List[queue.Queue] = [queue.Queue(maxsize=queue_size) for _ in self.stages]
        self.results: queue.Queue = queue.Queue()  # bounded by the in-flight slots
        self.slots = threading.Semaphore(max_in_flight)
        self.total: Optional[int] = None
        self.threads: List[threading.Thread] = []

    def fail(self, seq: int, label: str, stage: str, exc: BaseException) -> None:
        """Record that item ``seq`` failed; the run stops at the earliest failed item."""
        err = StageError(label, stage, exc)
        err.__cause__ = exc
        with self.lock:
            if self.error is not None and self.error_seq is not None and self.error_seq <= seq:
                log.warning("also failed (the run stops at an earlier item): %s", err)
                return
            if self.error is not None:
                log.warning("also failed (the run stops at an earlier item): %s", self.error)
            self.error_seq = seq  # before error: whoever sees the error also sees where the run stops
            self.error = err
            log.debug("stopping at item %d: %s", seq, err, exc_info=exc)

    def wanted(self, seq: int) -> bool:
        """Whether item ``seq`` comes before every failure (and so will be committed)."""
        error_seq = self.error_seq
        return error_seq is None or seq < error_seq

    def end(self) -> Optional[int]:
        """The number of items that will be committed, once known."""
        ends = [n for n in (self.total, self.error_seq) if n is not None]
        return min(ends) if ends else None

    def put(self, q: queue.Queue, obj: Any) -> bool:
        while not self.stop.is_set():
            try:
                q.put(obj, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def feed(self, items: Iterable[Any]) -> None:
        seq = 0
        it = iter(items)
        try:
            while not self.stop.is_set() and self.error is None:
                try:
                    item = next(it)
                except StopIteration:
                    self.total = seq
                    return
                while not self.slots.acquire(timeout=POLL_S):
                    if self.stop.is_set() or self.error is not None:
                        return
                if not self.put(self.queues[0], (seq, self.label(item), item)):
                    return
                seq += 1
        except BaseException as exc:  # an error while reading the input (e.g. decoding a video)
            self.fail(seq, f"input item {seq}", "reading input", exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None and (self.stop.is_set() or self.error is not None):
                close()

    def work(self, k: int, fn: Callable[[Any], Any]) -> None:
        """Worker thread of stage ``k``: runs until ``stop``, skipping items after a failure."""
        stage = self.stages[k]
        qin = self.queues[k]
        last = k == len(self.stages) - 1
        qout = self.results if last else self.queues[k + 1]
        while not self.stop.is_set():
            try:
                seq, label, obj = qin.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if not self.wanted(seq):
                continue  # after the failure: never committed, so not worth computing
            try:
                out = fn(obj)
            except BaseException as exc:
                self.fail(seq, label, stage.name, exc)
                continue  # keep serving the items before it
            if not self.put(qout, (seq, label, out)) and last:
                self.discard(out)

    def start(self, items: Iterable[Any]) -> None:
        t = threading.Thread(target=self.feed, args=(items,), name="corridorkey-feed", daemon=True)
        self.threads.append(t)
        for k, stage in enumerate(self.stages):
            for i, fn in enumerate(stage.workers):
                self.threads.append(threading.Thread(target=self.work, args=(k, fn), daemon=True,
                                                     name=f"corridorkey-{stage.name}-{i}"))
        for t in self.threads:
            t.start()

    def shutdown(self, pending: dict) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=JOIN_TIMEOUT_S)
            if t.is_alive():
                log.warning("thread %s is still busy after %.0f s; leaving it behind", t.name, JOIN_TIMEOUT_S)
        for _label, out in pending.values():
            self.discard(out)
        while True:
            try:
                _seq, _label, out = self.results.get_nowait()
            except queue.Empty:
                break
            self.discard(out)


def run_ordered(items: Iterable[Any], stages: Sequence[Stage], *, label: Callable[[Any], str] = str,
                commit: Callable[[Any], None] = _noop, discard: Callable[[Any], None] = _noop,
                queue_size: int = 2, max_in_flight: Optional[int] = None) -> Iterator[Any]:
    """Run ``items`` through ``stages``; ``commit`` and yield the last stage's results in input order.

    ``label(item)`` names an item in error messages. ``discard(result)`` is called for
    every last-stage result that will not be committed (error or Ctrl-C).
    Raises :class:`StageError` for the earliest failed item, after committing
    (and yielding) every item before it.
    """
    if not stages:
        raise ValueError("run_ordered needs at least one stage")
    if max_in_flight is None:
        max_in_flight = queue_size * (len(stages) + 1) + sum(len(s.workers) for s in stages)
    run = _Run(stages, label, discard, queue_size, max(1, max_in_flight))
    run.start(items)
    pending: dict = {}
    next_seq = 0
    announced = False
    try:
        while True:
            end = run.end()
            if end is not None and next_seq >= end:
                break
            if run.error is not None and not announced:
                announced = True
                _announce_stop(run, next_seq)
            try:
                seq, lab, out = run.results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if not run.wanted(seq):
                run.discard(out)
                continue
            pending[seq] = (lab, out)
            while next_seq in pending and run.wanted(next_seq):
                lab, out = pending.pop(next_seq)
                try:
                    commit(out)
                except BaseException as exc:
                    run.discard(out)
                    if not isinstance(exc, Exception):
                        raise  # Ctrl-C while committing: stop at once
                    run.fail(next_seq, lab, "writing", exc)
                    break
                next_seq += 1
                run.slots.release()
                yield out
    finally:
        run.shutdown(pending)
    if run.error is not None:
        raise run.error


def _announce_stop(run: _Run, committed: int) -> None:
    left = (run.error_seq or 0) - committed
    if left > 0:
        log.warning("%s; finishing the %d earlier item(s) still in flight before stopping (Ctrl-C stops now)",
                    run.error, left)
