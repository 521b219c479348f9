"""The run pipeline: a reader, decode/preprocess workers and one consumer, in input order, with bounded memory.

::

    reader thread ──jobs──▶ N worker threads (read, decode, preprocess) ──▶ consumer (infer, postprocess, emit)
          └────────────── slots, in input order (at most ``depth``) ──────────────┘

The reader walks the sources (and decodes video frames, which only a stream's own decoder can do in
order); each job is a *slot* put both on the work queue and on the order queue. Workers fill slots in
any order; the consumer takes slots from the order queue and waits for each, so results come out in
input order however long each input took. While the slot it needs next is not ready, a *helping*
consumer (files and recorded video) takes the next job off the work queue and fills it itself rather
than sitting idle, so one thread fewer is needed to keep the cores busy. The order queue is bounded,
so at most ``depth`` inputs are in flight whatever the number of inputs (a folder of 100,000 images
costs what a folder of ten does).

Live sources (a camera, or a video read at its own frame rate) must not fall behind: when the order
queue is full the reader drops the *oldest* waiting input rather than waiting itself, and counts it.
OpenCV and NumPy release the GIL while they work, so workers decode on all cores at once.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass
from typing import Iterator

from ..contract.errors import EdgeError
from .types import Item, Job, StreamStats


@dataclass(frozen=True)
class ThreadPlan:
    """How the cores are shared: decode/preprocess workers, the interpreter's threads, and whether the
    consumer decodes too while it waits (``helping``)."""

    cores: int
    workers: int
    threads: int
    reason: str
    helping: bool = False

    def describe(self) -> str:
        helper = " (+ the consumer between inferences)" if self.helping else ""
        return (f"{self.workers} decode worker(s){helper} + {self.threads} interpreter thread(s) on {self.cores} "
                f"core(s): {self.reason}")


def plan_threads(cores: int, decoding: bool, workers: int | None = None, threads: int | None = None,
                 live: bool = False) -> ThreadPlan:
    """Choose workers and interpreter threads together so that busy threads do not outnumber the cores.

    When inputs need decoding (images, video, cameras), decoding costs several times the inference of
    a typical edge model (a 1080p JPEG ~8 ms against ~2 ms of MobileNetV2 int8 here), so most cores go
    to decoding: the interpreter gets one thread below four cores and half of them from four up. A
    multi-threaded interpreter among busy workers would wait at each layer's barrier for a thread the
    scheduler parked.

    Files and recorded video: the consumer (the thread that invokes the model) decodes the next waiting
    input itself whenever the input it needs next is not ready, so the workers get exactly the cores the
    interpreter leaves and no more threads are busy than there are cores (on 2 cores: 1 worker + the
    consumer, 3-6% more images/s than 2 workers beside an idle-waiting consumer, measured side by side).
    Live sources (cameras, ``--realtime``): a consumer busy decoding would be late for the frame it waits
    for, so it only waits, and the workers get one more thread to use the core it leaves between invokes.
    Arrays (``.npy``/``.npz``) need no decoding: one reader, every core to the interpreter. Counts the
    caller gives win; the other is fitted around them.
    """
    cores = max(1, cores)
    asked = "as asked" if workers is not None and threads is not None else None
    if not decoding:
        return ThreadPlan(cores, workers or 1, threads or cores,
                          asked or "arrays need no decoding: every core to the interpreter")
    spare = 1 if live else 0   # a consumer that only waits leaves its core to one more worker between invokes
    if threads is None:
        threads = (1 if cores < 4 else cores // 2) if workers is None else max(1, cores - workers + spare)
        why = "decoding dominates: workers take the cores the interpreter leaves"
    else:
        why = "interpreter threads as asked, workers fill the other cores"
    if workers is None:
        workers = max(1, cores - threads + spare)
    else:
        why = "workers as asked, the interpreter fills the other cores"
    return ThreadPlan(cores, workers, threads, asked or why, helping=not live)


class _Slot:
    __slots__ = ("job", "live", "items", "error", "done", "cancelled")

    def __init__(self, job: Job | None, error: BaseException | None = None):
        self.job, self.live, self.items, self.error = job, bool(job and job.live), None, error
        self.done = threading.Event()
        self.cancelled = False
        if job is None:
            self.done.set()


_END = _Slot(None)


class Ordered:
    """Iterate the items of ``jobs``, made on ``workers`` threads, in the order of ``jobs``."""

    def __init__(self, jobs: Iterator[Job], workers: int, stats: StreamStats, stop: threading.Event,
                 live: bool = False, depth: int | None = None, helping: bool = False):
        self._jobs, self._stats, self._stop = jobs, stats, stop
        self._help = helping and not live
        self._workers = max(1, workers)
        # at most this many inputs in flight; live streams keep it short, since a waiting frame adds to the latency
        makers = self._workers + (1 if self._help else 0)
        self._depth = depth or (makers + 1 if live else 2 * makers + 2)
        self._order: deque[_Slot] = deque()
        self._cv = threading.Condition()
        self._work: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._feed, name="keras-edge-reader", daemon=True)]
        self._threads += [threading.Thread(target=self._make, name=f"keras-edge-worker-{i}", daemon=True)
                          for i in range(self._workers)]

    # ---- reader
    def _put_in_order(self, slot: _Slot) -> None:
        with self._cv:
            while len(self._order) >= self._depth and not self._stop.is_set():
                if slot.live and self._order[0].live:   # a live frame that waits is late: drop the oldest
                    old = self._order.popleft()
                    old.cancelled, old.job = True, None
                    self._stats.dropped += 1
                else:
                    self._cv.wait(0.1)
            self._order.append(slot)
            self._cv.notify_all()

    def _feed(self) -> None:
        try:
            for job in self._jobs:
                if self._stop.is_set():
                    break
                slot = _Slot(job)
                self._put_in_order(slot)
                self._work.put(slot)
        except BaseException as e:  # a bug in a producer: re-raised on the consumer's thread, in order
            self._put_in_order(_Slot(None, e))
        finally:
            self._put_in_order(_END)
            for _ in range(self._workers):
                self._work.put(_END)

    # ---- workers
    def _make(self) -> None:
        while True:
            slot = self._work.get()
            if slot is _END:
                return
            self._fill(slot)

    def _fill(self, slot: _Slot) -> None:
        job = slot.job
        if job is None or slot.cancelled or self._stop.is_set():
            slot.done.set()
            return
        try:
            items = job.make()
            for it in items:
                it.captured_ns = job.captured_ns
            slot.items = items
        except EdgeError as e:
            slot.items = [Item(job.name, error=str(e))]
        except Exception as e:  # a bug: the consumer re-raises it
            slot.error = e
        except BaseException as e:  # Ctrl-C while the consumer helps: the run stops now, not at this slot
            slot.error = e
            raise
        finally:
            slot.job = None          # the frame or bytes it held can go now
            slot.done.set()

    def _wait(self, slot: _Slot) -> None:
        """Wait for ``slot``; a helping consumer fills waiting slots itself meanwhile instead of idling."""
        while self._help and not slot.done.is_set():
            try:
                other = self._work.get_nowait()
            except queue.Empty:
                break
            if other is _END:
                self._work.put(_END)
                break
            self._fill(other)
        slot.done.wait()

    # ---- consumer
    def _next(self) -> _Slot:
        with self._cv:
            while not self._order:
                self._cv.wait()
            slot = self._order.popleft()
            self._cv.notify_all()
            return slot

    def __iter__(self) -> Iterator[Item]:
        for t in self._threads:
            t.start()
        try:
            while True:
                slot = self._next()
                if slot is _END:
                    break
                self._wait(slot)
                if slot.error is not None:
                    raise slot.error
                items, slot.items = slot.items, None
                if not slot.cancelled and items:
                    yield from items
        finally:
            self._stop.set()
            with self._cv:
                self._cv.notify_all()
            for _ in range(self._workers):
                self._work.put(_END)
            for t in self._threads:
                t.join(timeout=5)
