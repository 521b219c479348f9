"""Side-by-side timing of the whole model and its ops, in passes that replay an inference.

A pass runs the whole model once, then every op's own model once *in the model's order*, then the
overhead probes, each call timed on its own. Running the ops in order, once each, keeps the caches as an
inference leaves them: op k's weights were last touched a whole pass ago, as in the real model, so a
large layer is not timed with its weights hot in cache (timing an op many times in a row would). Passes
repeat until both ``passes`` and ``min_seconds`` are reached, and a shared machine's drifting load falls on
the whole model and its ops alike.

Each contender's time is the mean of its passes with the slowest and fastest tenth left out (a trimmed
mean; quartiles for spread), not the median: on a busy machine a 20 ms inference is preempted in most
passes while a 0.1 ms op almost never is, so medians would drop the ops' share of the waiting and their sum
would undercount the whole. Means add up (the expected time of the whole is the sum of its parts'); the
trimming keeps one stall of a shared machine from deciding an op's time. The check of the sum against the whole
(:meth:`Replay.pass_sums`) pairs them pass by pass: a pass's ops ran as long as one inference, so they
meet as much of the machine's load as the whole did, and the median over passes drops the odd stall.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Hashable

import numpy as np

MAX_PASSES = 20000
TRIM = 0.1


@dataclass(frozen=True)
class Timed:
    """Per-invoke time of one contender: the mean over passes and the interquartile range (ms)."""

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
        mean, lo, hi = trimmed_mean(a), np.percentile(a, 25, axis=0), np.percentile(a, 75, axis=0)
        return {k: Timed(float(mean[j]), float(lo[j]), float(hi[j]), len(a)) for j, k in enumerate(self.keys)}

    def column(self, key: Hashable) -> np.ndarray:
        return self.samples[:, self.keys.index(key)]

    def pass_sums(self, less: dict[Hashable, float]) -> np.ndarray:
        """Per pass: the sum over the keys of ``less`` of their time less the given overhead (ms)."""
        cols = [self.keys.index(k) for k in less]
        return np.maximum(self.samples[:, cols] - np.asarray(list(less.values())), 0.0).sum(axis=1)


def trimmed_mean(a: np.ndarray, cut: float = TRIM) -> np.ndarray:
    """Column means without the lowest and highest ``cut`` of each column's values."""
    s = np.sort(a, axis=0)
    k = int(len(s) * cut)
    return s[k:len(s) - k].mean(axis=0) if len(s) > 2 * k else s.mean(axis=0)


def replay(invokes: dict[Hashable, Callable[[], None]], passes: int, min_seconds: float, warmup: int = 2,
           progress: Callable[[int], None] = lambda done: None) -> Replay:
    """Time every callable once per pass, in the given order, until ``passes`` and ``min_seconds``; see above."""
    keys = list(invokes)
    calls = [invokes[k] for k in keys]
    for _ in range(warmup):
        for call in calls:
            call()
    clock = time.perf_counter_ns
    samples = np.zeros((MAX_PASSES, len(keys)), dtype=np.int64)
    start, done = clock(), 0
    while done < MAX_PASSES and (done < passes or clock() - start < min_seconds * 1e9):
        row = samples[done]
        for j, call in enumerate(calls):
            t0 = clock()
            call()
            row[j] = clock() - t0
        done += 1
        if done % 50 == 0:
            progress(done)
    return Replay(tuple(keys), samples[:done] / 1e6)
