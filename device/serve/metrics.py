"""The server's numbers: counters, a latency histogram, live rates over a short window, and their two renderings
(``/stats.json`` for the page, ``/metrics`` in Prometheus' text format, version 0.0.4).

Every update takes one lock for a few dictionary operations, so the inference thread never waits on a reader
for longer than that.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any

from ..run.types import Result

# Prometheus histogram buckets for inference and capture-to-result latency, in seconds (1 ms .. 5 s)
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
WINDOW_S = 5.0          # rates and percentiles on the page are over the last few seconds
RECENT = 512            # latencies kept for the page's p50/p99


def rss_bytes() -> int:
    """This process's resident memory now (Linux /proc), else its peak (getrusage)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Histogram:
    """A cumulative-bucket histogram (Prometheus semantics)."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS):
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        i = next((k for k, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        self.counts[i] += 1
        self.sum += seconds
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        out, acc = [], 0
        sep = "," if labels else ""
        for b, c in zip((*self.buckets, float("inf")), self.counts):
            acc += c
            le = "+Inf" if b == float("inf") else repr(b)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {acc}')
        brace = f"{{{labels}}}" if labels else ""
        out += [f"{name}_sum{brace} {self.sum:.6f}", f"{name}_count{brace} {self.n}"]
        return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q / 100 * len(s)))], 3)


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class ServeStats:
    """What the server counts. ``source`` is ``live`` (the camera/video) or ``api`` (POST /infer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self.inferences = {"live": 0, "api": 0}
        self.errors = {"live": 0, "api": 0}
        self.rejected: dict[str, int] = {}
        self.frames = self.dropped = 0          # the live source's frames read and dropped (its StreamStats)
        self.loops = 0                          # passes over a looping --source
        self._base_frames = self._base_dropped = 0   # the counters when the current pass began
        self.infer_hist = {"live": Histogram(), "api": Histogram()}
        self.latency_hist = Histogram()         # live frames: capture to result
        self._done: deque[float] = deque()      # monotonic times of live results in the window
        self._dropped_at: deque[tuple[float, int]] = deque()
        self._latency: deque[float] = deque(maxlen=RECENT)
        self.last: Result | None = None          # the latest live result (shown as run --json prints it)
        self.context: dict[str, Any] = {}        # the fields every result line carries (Runner.context)
        self.ready = False
        self.state = "loading"
        self.info: dict[str, Any] = {}
        self.viewers = 0

    def result(self, source: str, ok: bool, infer_ms: float, latency_ms: float | None = None,
               frames: int | None = None, dropped: int | None = None, last: Result | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            self.inferences[source] += 1
            if not ok:
                self.errors[source] += 1
            else:
                self.infer_hist[source].observe(infer_ms / 1e3)
            if source != "live":
                return
            if frames is not None:
                self.frames, self.dropped = self._base_frames + frames, self._base_dropped + dropped
            self._done.append(now)
            self._dropped_at.append((now, self.dropped))
            if latency_ms is not None:
                self._latency.append(latency_ms)
                self.latency_hist.observe(latency_ms / 1e3)
            if last is not None:
                self.last = last
            self._trim(now)

    def new_pass(self) -> None:
        """A looping source starts over: its stream counters restart at 0, ours carry on."""
        with self._lock:
            self._base_frames, self._base_dropped = self.frames, self.dropped
            self.loops += 1

    def reject(self, reason: str) -> None:
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def _trim(self, now: float) -> None:
        while self._done and now - self._done[0] > WINDOW_S:
            self._done.popleft()
        while len(self._dropped_at) > 1 and now - self._dropped_at[0][0] > WINDOW_S:
            self._dropped_at.popleft()

    def snapshot(self) -> dict[str, Any]:
        """The page's numbers (``/stats.json``)."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            span = min(WINDOW_S, now - self.started) or 1e-9
            dropped_fps = 0.0
            if len(self._dropped_at) > 1:
                (t0, d0), (t1, d1) = self._dropped_at[0], self._dropped_at[-1]
                dropped_fps = (d1 - d0) / max(t1 - t0, 1e-9)
            lat = list(self._latency)
            return {"ready": self.ready, "state": self.state, "uptime_s": round(now - self.started, 1),
                    "processed_fps": round(len(self._done) / span, 2), "dropped_fps": round(dropped_fps, 2),
                    "latency_ms_p50": _percentile(lat, 50), "latency_ms_p99": _percentile(lat, 99),
                    "frames": self.frames, "dropped": self.dropped, "loops": self.loops,
                    "inferences": dict(self.inferences), "errors": dict(self.errors), "rejected": dict(self.rejected),
                    "viewers": self.viewers, "rss_mb": round(rss_bytes() / 2**20, 1), **self.info,
                    "last": self.last.to_dict(self.context) if self.last is not None else None}

    def prometheus(self) -> str:
        """``/metrics``: counters, histograms and gauges in Prometheus' text exposition format."""
        with self._lock:
            info = ",".join(f'{k}="{_label(v)}"' for k, v in self.info.items() if not isinstance(v, dict))
            out = ["# HELP keras_edge_info The model and the engine this server runs.", "# TYPE keras_edge_info gauge",
                   f"keras_edge_info{{{info}}} 1",
                   "# HELP keras_edge_ready 1 once the model is loaded and a warm-up or frame ran.",
                   "# TYPE keras_edge_ready gauge", f"keras_edge_ready {int(self.ready)}",
                   "# HELP keras_edge_inferences_total Inputs run, by source (live: camera/video, api: POST /infer).",
                   "# TYPE keras_edge_inferences_total counter"]
            out += [f'keras_edge_inferences_total{{source="{s}"}} {n}' for s, n in self.inferences.items()]
            out += ["# HELP keras_edge_errors_total Inputs that gave an error instead of a result, by source.",
                    "# TYPE keras_edge_errors_total counter"]
            out += [f'keras_edge_errors_total{{source="{s}"}} {n}' for s, n in self.errors.items()]
            out += ["# HELP keras_edge_rejected_total Requests refused before inference, by reason.",
                    "# TYPE keras_edge_rejected_total counter"]
            out += [f'keras_edge_rejected_total{{reason="{_label(r)}"}} {n}' for r, n in sorted(self.rejected.items())]
            out += ["# HELP keras_edge_frames_total Frames read from the live source.",
                    "# TYPE keras_edge_frames_total counter", f"keras_edge_frames_total {self.frames}",
                    "# HELP keras_edge_dropped_frames_total Live frames dropped because inference was busy.",
                    "# TYPE keras_edge_dropped_frames_total counter", f"keras_edge_dropped_frames_total {self.dropped}",
                    "# HELP keras_edge_inference_seconds Model invocation time per input, by source.",
                    "# TYPE keras_edge_inference_seconds histogram"]
            for s, h in self.infer_hist.items():
                out += h.lines("keras_edge_inference_seconds", f'source="{s}"')
            out += ["# HELP keras_edge_latency_seconds Live frames: capture to result.",
                    "# TYPE keras_edge_latency_seconds histogram"]
            out += self.latency_hist.lines("keras_edge_latency_seconds")
            out += ["# HELP keras_edge_viewers Open live-stream connections.", "# TYPE keras_edge_viewers gauge",
                    f"keras_edge_viewers {self.viewers}",
                    "# HELP process_resident_memory_bytes Resident memory size in bytes.",
                    "# TYPE process_resident_memory_bytes gauge", f"process_resident_memory_bytes {rss_bytes()}"]
        return "\n".join(out) + "\n"
