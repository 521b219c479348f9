"""The run pipeline's mechanism: input order whatever each job costs, bounded memory, live frames dropped
oldest first, errors kept in place, and the thread plan. Real OpenCV work in the jobs, no timing asserted."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from keras_edge.device.contract.errors import DataError
from keras_edge.device.run.types import Item, StreamStats
from keras_edge.device.run.workers import Job, Ordered, plan_threads


def decode_job(i: int, data: bytes) -> Job:
    def make() -> list[Item]:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return [Item(f"img{i}", [cv2.resize(img, (8, 8))])]
    return Job(f"img{i}", make)


def test_items_come_out_in_input_order_when_costs_vary():
    rng = np.random.default_rng(0)
    # a few large images among many small ones: the large ones finish long after later small ones
    sizes = [1500 if i % 7 == 3 else 16 for i in range(60)]
    blobs = [cv2.imencode(".png", rng.integers(0, 255, (s, s, 3), dtype=np.uint8))[1].tobytes() for s in sizes]
    out = [it.name for it in Ordered((decode_job(i, b) for i, b in enumerate(blobs)), 4, StreamStats(),
                                     threading.Event())]
    assert out == [f"img{i}" for i in range(60)]


def test_in_flight_inputs_are_bounded_and_rss_stays_flat():
    """A generator of many inputs, each holding its own bytes: the reader never runs far ahead."""
    data = cv2.imencode(".png", np.random.default_rng(1).integers(0, 255, (96, 96, 3), dtype=np.uint8))[1].tobytes()
    produced = consumed = ahead = 0
    rss = []

    def gen():
        nonlocal produced
        for i in range(4000):
            produced += 1
            yield decode_job(i, bytes(bytearray(data)))   # a fresh copy per input, as files read from disk

    workers = 3
    for item in Ordered(gen(), workers, StreamStats(), threading.Event()):
        consumed += 1
        ahead = max(ahead, produced - consumed)
        if consumed % 500 == 0:
            with open("/proc/self/statm") as f:
                rss.append(int(f.read().split()[1]) * 4096 / 2**20)
    assert consumed == 4000
    assert ahead <= 2 * workers + 2 + 2          # the order queue, the slot being consumed, the one being made
    if rss:
        assert max(rss[1:]) - rss[1] < 16         # 4000 x ~28 KB would be >100 MB if queued without bound


def test_live_jobs_drop_the_oldest_when_the_consumer_is_behind():
    stats, stop = StreamStats(), threading.Event()
    gate = threading.Event()

    def gen():
        for i in range(40):
            yield Job(f"f{i}", lambda i=i: [Item(f"f{i}", [np.zeros(1)])], captured_ns=i, live=True)
        gate.set()

    got = []
    for item in Ordered(gen(), 2, stats, stop, live=True):
        gate.wait(10)                              # consume only once every frame has arrived: most are late
        got.append(int(item.name[1:]))
        assert item.captured_ns == got[-1]
    assert got == sorted(got) and got[-1] == 39    # in order, the newest kept
    assert stats.dropped > 0 and len(got) + stats.dropped == 40


def test_files_are_never_dropped_and_errors_keep_their_place():
    def make(i):
        def f():
            if i == 5:
                raise DataError("broken", "fix it")
            return [Item(f"x{i}", [np.zeros(1)])]
        return f

    items = list(Ordered((Job(f"x{i}", make(i)) for i in range(12)), 2, StreamStats(), threading.Event(), depth=2))
    assert [it.name for it in items] == [f"x{i}" for i in range(12)]
    assert items[5].error == "broken; fix it" and all(it.error is None for k, it in enumerate(items) if k != 5)


def test_a_bug_in_a_job_is_raised_on_the_consumer():
    def boom():
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        list(Ordered(iter([Job("a", lambda: [Item("a")]), Job("b", boom)]), 2, StreamStats(), threading.Event()))


def test_stopping_early_ends_every_thread():
    before = threading.active_count()
    it = iter(Ordered((Job(f"j{i}", lambda i=i: [Item(f"j{i}")]) for i in range(10_000)), 3, StreamStats(),
                      threading.Event()))
    assert next(it).name == "j0"
    it.close()
    assert threading.active_count() == before


@pytest.mark.parametrize("cores", [1, 2, 3, 4, 8])
def test_thread_plan_fits_the_cores(cores):
    p = plan_threads(cores, decoding=True)
    assert p.threads >= 1 and p.workers >= 1 and p.helping
    # files: the consumer decodes while it waits, so workers and interpreter threads share the cores exactly
    assert p.workers + p.threads == max(cores, 2)
    live = plan_threads(cores, decoding=True, live=True)
    assert live.threads == p.threads and not live.helping
    assert live.workers + live.threads <= cores + 1   # the consumer idles between invokes: one worker takes its core
    assert live.workers == p.workers + 1 or cores == 1
    a = plan_threads(cores, decoding=False)
    assert (a.workers, a.threads, a.helping) == (1, cores, False)
    w = plan_threads(cores, True, workers=1)
    assert w.workers == 1 and w.threads == max(1, cores - 1) and "workers as asked" in w.reason
    assert plan_threads(cores, True, workers=1, live=True).threads == cores
    t = plan_threads(cores, True, threads=cores)
    assert t.threads == cores and t.workers == 1
    both = plan_threads(cores, True, workers=5, threads=2)
    assert (both.workers, both.threads, both.reason) == (5, 2, "as asked")


def test_a_helping_consumer_fills_waiting_slots_itself_and_keeps_the_order():
    """One worker and a consumer with nothing ready: the consumer decodes jobs too, results stay in order."""
    rng = np.random.default_rng(2)
    blobs = [cv2.imencode(".png", rng.integers(0, 255, (s, s, 3), dtype=np.uint8))[1].tobytes()
             for s in ([600, 16, 16, 900] * 10)]
    consumer, made_by = threading.get_ident(), {}

    def job(i, data):
        inner = decode_job(i, data)

        def make():
            made_by[i] = threading.get_ident()
            return inner.make()
        return Job(inner.name, make)

    out = [it.name for it in Ordered((job(i, b) for i, b in enumerate(blobs)), 1, StreamStats(), threading.Event(),
                                     helping=True)]
    assert out == [f"img{i}" for i in range(len(blobs))]
    on_consumer = sum(1 for t in made_by.values() if t == consumer)
    assert 0 < on_consumer < len(blobs)        # both the worker and the consumer made inputs
    made_by.clear()
    list(Ordered((job(i, b) for i, b in enumerate(blobs[:8])), 1, StreamStats(), threading.Event()))
    assert consumer not in made_by.values()    # not asked to help: the consumer only waits
    made_by.clear()
    live = [Job(j.name, j.make, captured_ns=0, live=True) for j in (job(i, b) for i, b in enumerate(blobs[:8]))]
    list(Ordered(iter(live), 1, StreamStats(), threading.Event(), live=True, helping=True))
    assert consumer not in made_by.values()    # live frames: a busy consumer would be late, so it never helps


def test_a_bug_in_a_job_the_consumer_made_is_raised_in_its_place():
    slow = threading.Event()

    def hold():
        slow.wait(5)
        return [Item("a")]

    def boom():
        slow.set()
        raise ZeroDivisionError("bug")

    got = []
    with pytest.raises(ZeroDivisionError):
        for it in Ordered(iter([Job("a", hold), Job("b", boom)]), 1, StreamStats(), threading.Event(), helping=True):
            got.append(it.name)
    assert got == ["a"]                         # the input before the broken one still came out


def test_ctrl_c_while_the_consumer_helps_stops_the_run_at_once():
    started = threading.Event()

    def hold():
        started.wait(5)
        return [Item("a")]

    def interrupt():
        started.set()
        raise KeyboardInterrupt

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        list(Ordered(iter([Job("a", hold), Job("b", interrupt)] + [Job(f"c{i}", lambda: [Item("c")]) for i in range(50)]),
                     1, StreamStats(), threading.Event(), helping=True))
    assert threading.active_count() == before
