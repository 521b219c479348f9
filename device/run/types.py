"""The run pipeline's data: what sources make (items, jobs), what the runner gives (results, summaries).

Kept apart from the stages that make and consume them, so sources, workers, the runner and drawing
import these types without importing each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from ..outputs.postprocess import TaskResult


@dataclass
class Item:
    """One model input set (or the reason it could not be made), with its cost."""

    name: str
    tensors: list[np.ndarray] | None = None
    error: str | None = None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    captured_ns: int | None = None   # live sources: perf_counter_ns when the frame was captured
    image_hw: tuple[int, int] | None = None   # the original image's (h, w); None for arrays (model-input units)
    image: np.ndarray | None = None  # the decoded image (BGR), kept only when results are drawn (run --draw)
    fps: float | None = None         # video/camera frames only: the stream's frame rate (0.0 if unknown)


@dataclass
class Feed:
    """Turns raw inputs into model tensors; built by the runner from the model's plans."""

    from_bytes: Callable[[bytes, str], Item]
    from_frame: Callable[[np.ndarray, str], Item]
    from_arrays: Callable[[str, dict[str, np.ndarray]], list[Item]]
    # called on the reader, in input order, while it returns True: an image's bytes → its item if the feed
    # needed this image to decide something (the reduced-decoding probe), else None
    undecided: Callable[[], bool] = lambda: False
    decide: Callable[[bytes, str], Item | None] = lambda data, name: None


@dataclass
class StreamStats:
    """Frames read, dropped (live sources only) and the wall time of the stream."""

    frames: int = 0
    dropped: int = 0
    streams: list[str] = field(default_factory=list)


@dataclass
class Job:
    """One unit of worker work: ``make()`` gives the input's items (or raises an EdgeError, kept as an error item)."""

    name: str
    make: Callable[[], list[Item]]
    captured_ns: int | None = None   # live sources: when the frame was captured (for end-to-end latency)
    live: bool = False               # a camera or realtime video frame: dropped rather than waited for


@dataclass(frozen=True)
class Prediction:
    index: int
    score: float
    label: str | None = None


@dataclass
class Result:
    """What one input gave: top-k for classifiers, output shapes (and saved files) otherwise."""

    source: str
    error: str | None = None
    top: list[Prediction] | None = None
    outputs: list[dict[str, Any]] | None = None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0
    infer_ms: float = 0.0
    task: TaskResult | None = None           # what the outputs mean (detection, segmentation, ...); not classifiers
    postprocess_ms: float = 0.0
    labels: tuple[str, ...] | None = field(default=None, repr=False)
    # raw outputs (dequantized), kept only when they are drawn (run --draw); never serialised
    raw: list[Any] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self, context: dict[str, Any]) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "ok": self.ok, **context}
        if self.error:
            d["error"] = self.error
        if self.top is not None:
            d["top_k"] = [asdict(p) for p in self.top]
        if self.outputs is not None:
            d["outputs"] = self.outputs
        if self.task is not None:
            d["task"] = self.task.to_dict(self.labels)
        d["timing_ms"] = {"decode": round(self.decode_ms, 3), "preprocess": round(self.preprocess_ms, 3),
                          "infer": round(self.infer_ms, 3)}
        if self.task is not None:
            d["timing_ms"]["postprocess"] = round(self.postprocess_ms, 3)
        return d


@dataclass
class Summary:
    target: str
    runtime: str
    backend: str
    threads: int
    inputs: int = 0
    failed: int = 0
    frames: int = 0
    dropped: int = 0
    seconds: float = 0.0
    infer_ms_mean: float = 0.0
    postprocess_ms_mean: float = 0.0         # task postprocessing (decoding, NMS, mask mapping), apart from inference
    workers: int = 1
    helping: bool = False                    # the consumer decodes too while the input it needs is not ready
    cores: int = 1
    pipeline: str = ""                       # what was chosen for workers and threads, and why
    live: bool = False                       # a camera or a realtime video was read
    latency_ms_p50: float | None = None      # live frames: capture to result
    latency_ms_p99: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.inputs / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fps": round(self.fps, 2)}


class Latencies:
    """Percentiles of a stream of durations in constant memory: log-spaced bins 1% wide, 1 µs to ~1000 s."""

    GROWTH, LOW_MS, BINS = 1.01, 1e-3, 2100

    def __init__(self) -> None:
        self.counts = np.zeros(self.BINS + 1, np.int64)
        self.n = 0

    def add(self, ms: float) -> None:
        b = 0 if ms <= self.LOW_MS else int(np.log(ms / self.LOW_MS) / np.log(self.GROWTH)) + 1
        self.counts[min(b, self.BINS)] += 1
        self.n += 1

    def percentile(self, q: float) -> float | None:
        if not self.n:
            return None
        b = int(np.searchsorted(np.cumsum(self.counts), q / 100 * self.n))
        return round(self.LOW_MS * self.GROWTH ** max(0, b - 0.5), 3)   # the bin's geometric middle
