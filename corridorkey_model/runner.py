"""A bounded-queue threaded runner that keeps order and fails loudly.

Items flow through stages (each a few worker threads joined by bounded
queues); results may finish out of order, but the main thread ``commit``s and
yields them strictly in input order. At most ``max_in_flight`` items are
between the feeder and the commit, so memory stays bounded however slow the
first frame is.

* An exception in any stage (or in the item iterator) stops the run: the
  other workers quit, results not yet committed are ``discard``ed, and
  :class:`StageError` is raised naming the item (the frame's path) and stage.
* Ctrl-C (``KeyboardInterrupt`` in the main thread) does the same clean-up and
  re-raises, so nothing half-written is left behind.

The runner knows nothing about frames; :mod:`corridorkey_model.pipeline` gives
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
    def threads(name: str, fn: Callable[[Any], Any], count: int) -> "Stage":
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
    def __init__(self, stages: Sequence[Stage], label: Callable[[Any], str], discard: Callable[[Any], None],
                 queue_size: int, max_in_flight: int) -> None:
        self.stages = list(stages)
        self.label = label
        self.discard = discard
        self.stop = threading.Event()
        self.error: Optional[StageError] = None
        self.lock = threading.Lock()
        self.queues: List[queue.Queue] = [queue.Queue(maxsize=queue_size) for _ in self.stages]
        self.results: queue.Queue = queue.Queue()  # bounded by the in-flight slots
        self.slots = threading.Semaphore(max_in_flight)
        self.total: Optional[int] = None
        self.threads: List[threading.Thread] = []

    def fail(self, label: str, stage: str, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = StageError(label, stage, exc)
                self.error.__cause__ = exc
                log.debug("stopping: %s", self.error, exc_info=exc)
        self.stop.set()

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
            while not self.stop.is_set():
                try:
                    item = next(it)
                except StopIteration:
                    self.total = seq
                    return
                while not self.slots.acquire(timeout=POLL_S):
                    if self.stop.is_set():
                        return
                if not self.put(self.queues[0], (seq, self.label(item), item)):
                    return
                seq += 1
        except BaseException as exc:  # an error while reading the input (e.g. decoding a video)
            self.fail(f"input item {seq}", "reading input", exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None and self.stop.is_set():
                close()

    def work(self, k: int, fn: Callable[[Any], Any]) -> None:
        stage = self.stages[k]
        qin = self.queues[k]
        last = k == len(self.stages) - 1
        qout = self.results if last else self.queues[k + 1]
        while not self.stop.is_set():
            try:
                seq, label, obj = qin.get(timeout=POLL_S)
            except queue.Empty:
                continue
            try:
                out = fn(obj)
            except BaseException as exc:
                self.fail(label, stage.name, exc)
                return
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
    Raises :class:`StageError` on the first failure.
    """
    if not stages:
        raise ValueError("run_ordered needs at least one stage")
    if max_in_flight is None:
        max_in_flight = queue_size * (len(stages) + 1) + sum(len(s.workers) for s in stages)
    run = _Run(stages, label, discard, queue_size, max(1, max_in_flight))
    run.start(items)
    pending: dict = {}
    next_seq = 0
    try:
        while run.error is None and not (run.total is not None and next_seq >= run.total):
            try:
                seq, lab, out = run.results.get(timeout=POLL_S)
            except queue.Empty:
                continue
            pending[seq] = (lab, out)
            while next_seq in pending and run.error is None:
                lab, out = pending.pop(next_seq)
                try:
                    commit(out)
                except BaseException as exc:
                    run.discard(out)
                    run.fail(lab, "writing", exc)
                    break
                next_seq += 1
                run.slots.release()
                yield out
    finally:
        run.shutdown(pending)
    if run.error is not None:
        raise run.error
