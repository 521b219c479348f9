"""Side-by-side timing of the whole model and its ops, in passes that replay an inference.

A pass runs the whole model once, then every op's own model once *in the model's order*, then the
overhead probes, each call timed on its own. Running the ops in order, once each, keeps the caches as an
inference leaves them: op k's weights were last touched a whole pass ago, as in the real model, so a
large layer is not timed with its weights hot in cache (timing an op many times in a row would). Before
each timed call its inputs are written again, untimed, as the op before it (or the caller) would have just
written them: hot in cache, as in the model. Passes
repeat until both ``passes`` and ``min_seconds`` are reached, and a shared machine's drifting load falls on
the whole model and its ops alike.

Each contender's time is the median of its passes (quartiles for spread): what the op costs when nothing
else interrupts it. The check of the sum against the whole pairs them pass by pass
(:meth:`Replay.pass_sums`): a pass's ops ran as long as one inference, so they met as much of a busy machine's
load as the whole did (a 20 ms inference is preempted in most passes, a 0.1 ms op almost never, so the sum of
the ops' medians alone would undercount a loaded machine's whole), and the median over passes drops the odd
stall.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np

MAX_PASSES = 20000


@dataclass(frozen=True)
class Timed:
    """Per-invoke time of one contender: the median over passes and the interquartile range (ms)."""

    ms: float
    lo_ms: float
    hi_ms: float
    passes: int

    def minus(self, ms: float) -> "Timed":
        """This time less a fixed overhead, never below zero."""
        return Timed(max(0.0, self.ms - ms), max(0.0, self.lo_ms - ms), max(0.0, self.hi_ms - ms), self.passes)


@dataclass(frozen=True)
class Replay:
    """Every contender's time in every pass (ms), columns in ``keys`` order."""

    keys: tuple[Hashable, ...]
    samples: np.ndarray

    def timed(self) -> dict[Hashable, Timed]:
        a = self.samples
        med, lo, hi = np.median(a, axis=0), np.percentile(a, 25, axis=0), np.percentile(a, 75, axis=0)
        return {k: Timed(float(med[j]), float(lo[j]), float(hi[j]), len(a)) for j, k in enumerate(self.keys)}

    def column(self, key: Hashable) -> np.ndarray:
        return self.samples[:, self.keys.index(key)]

    def pass_sums(self, less: dict[Hashable, float]) -> np.ndarray:
        """Per pass: the sum over the keys of ``less`` of their time less the given overhead (ms)."""
        cols = [self.keys.index(k) for k in less]
        return np.maximum(self.samples[:, cols] - np.asarray(list(less.values())), 0.0).sum(axis=1)


Contender = tuple[Callable[[], None], Callable[[], None]]   # (untimed preparation, the timed call)


def replay(invokes: dict[Hashable, Contender], passes: int, min_seconds: float, warmup: int = 2,
           progress: Callable[[int], None] = lambda done: None) -> Replay:
    """Time every (prepare, call) once per pass, in the given order, until ``passes`` and ``min_seconds``."""
    keys = list(invokes)
    calls = [invokes[k] for k in keys]
    for _ in range(warmup):
        for prepare, call in calls:
            prepare()
            call()
    clock = time.perf_counter_ns
    samples = np.zeros((MAX_PASSES, len(keys)), dtype=np.int64)
    start, done = clock(), 0
    while done < MAX_PASSES and (done < passes or clock() - start < min_seconds * 1e9):
        row = samples[done]
        for j, (prepare, call) in enumerate(calls):
            prepare()
            t0 = clock()
            call()
            row[j] = clock() - t0
        done += 1
        if done % 50 == 0:
            progress(done)
    return Replay(tuple(keys), samples[:done] / 1e6)
