"""``keras-edge bench``: init, first inference and steady-state ``invoke`` latency, RSS and size.

With ``--accelerator gpu`` or ``auto`` every variant is also measured on the CPU, side by side, and
the GPU adapter is named with its kind (a software rasterizer is marked as such). On the GPU each
timed ``invoke`` includes completion: it reads every output (see :mod:`.engine`).

Each (variant, threads) pair is measured in a fresh worker process (:mod:`.bench_worker`), so init and
first-inference times are cold and peak RSS belongs to that variant alone. The timed loop calls the
runtime's own ``invoke`` with ``time.perf_counter_ns`` around each call, after warm-up, until both
``runs`` and ``min_seconds`` are reached.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..engine import gpu
from ..engine.core import Accelerator
from ..contract.checks import positive_int
from ..contract.errors import ConfigError, EdgeError
from ..contract.files import replace_file
from ..engine.launcher import run_child
from ..engine.sysinfo import environment

WORKER_MODULE = "keras_edge.device.bench.worker"
from ..engine.target import is_bundle, variant_names


@dataclass(frozen=True)
class BenchConfig:
    target: str
    variants: str | None = None        # None: default variant; "all"; or comma-separated names
    runs: int = 50
    warmup: int = 5
    min_seconds: float = 1.0
    threads: tuple[int, ...] = ()      # () → all cores
    e2e: str | None = None             # an image: also decode + preprocess + inference per image
    accelerator: Accelerator = Accelerator.CPU
    fallback: bool = True
    gpu_delegate: str | None = None
    preprocess: str | None = None
    input_shape: tuple[int, ...] | None = None
    gpu_timeout: float = gpu.DEFAULT_TIMEOUT_S
    compare_cpu: bool = True           # with a GPU accelerator: also measure each variant on the CPU

    def __post_init__(self) -> None:
        object.__setattr__(self, "accelerator", Accelerator(self.accelerator))
        positive_int("runs", self.runs, "1 or more timed runs")
        positive_int("warmup", self.warmup, "0 or more untimed runs", minimum=0)
        if not self.min_seconds >= 0:
            raise ConfigError("min_seconds", f"{self.min_seconds} is negative", "give 0 or more seconds")
        for t in self.threads:
            positive_int("threads", t, "1 or more threads")
        if self.e2e and not Path(self.e2e).is_file():
            raise ConfigError("e2e", f"{self.e2e}: no such image file", "give one image file")


@dataclass
class BenchResult:
    variant: str
    threads: int
    backend: str
    runtime: str
    bytes: int
    runs: int = 0
    init_ms: float = 0.0
    first_ms: float = 0.0
    median_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    min_ms: float = 0.0
    mean_ms: float = 0.0
    std_ms: float = 0.0
    throughput_ips: float = 0.0          # 1000 / mean_ms: back-to-back invokes on one caller thread
    rss_mb: float = 0.0
    e2e: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    accelerator: str = "cpu"                      # what was asked for; ``backend`` is what ran
    adapter: dict[str, Any] | None = None         # the GPU adapter (name, backend, type, driver, software)
    gpu: dict[str, Any] = field(default_factory=dict)   # probe and compile times, delegation


@dataclass
class BenchReport:
    environment: dict[str, Any]
    results: list[BenchResult]

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "results": [asdict(r) for r in self.results]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BenchReport":
        """Rebuild a report from its JSON (for example one brought back from a board)."""
        names = set(BenchResult.__dataclass_fields__)
        return cls(dict(d["environment"]), [BenchResult(**{k: v for k, v in r.items() if k in names}) for r in d["results"]])


def latency_stats(ns: list[int]) -> dict[str, float]:
    """Median, p90, p99, min, mean, std (ms) and throughput (inferences/s) of per-call times in ns."""
    a = np.asarray(ns, dtype=np.float64) / 1e6
    mean = float(a.mean())
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)),
            "p99_ms": float(np.percentile(a, 99)), "min_ms": float(a.min()), "mean_ms": mean,
            "std_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0, "throughput_ips": 1000.0 / mean if mean > 0 else 0.0}


def jobs(config: BenchConfig) -> list[dict[str, Any]]:
    """One worker job per (variant, threads)."""
    from ..engine.runtime import default_threads

    names: list[str | None] = list(variant_names(config.target, config.variants)) if is_bundle(config.target) else [None]
    if config.variants not in (None, "all") and not is_bundle(config.target):
        raise ConfigError("variants", f"{config.variants} needs a bundle, but {config.target} is a single model file",
                          "leave it out for a .tflite file")
    threads = config.threads or (default_threads(),)
    base = {k: v for k, v in asdict(config).items() if k not in ("variants", "threads", "compare_cpu")}
    accels = [str(config.accelerator)]
    if config.accelerator is not Accelerator.CPU and config.compare_cpu:
        accels.append(str(Accelerator.CPU))
    return [{**base, "accelerator": a, "variant": n, "threads": t} for n in names for t in threads for a in accels]


def run_job(job: dict[str, Any], timeout: float = 1800) -> BenchResult:
    """Measure one job in a fresh process (:mod:`..engine.launcher`: argument list, JSON in and out)."""
    out = run_child(WORKER_MODULE, job, timeout)
    what = job.get("variant") or job["target"]
    if out.timed_out:
        raise EdgeError(f"benchmark of {what} took longer than {timeout:.0f} s",
                        "time fewer runs, or a shorter minimum time")
    if out.data is None:
        raise EdgeError(f"benchmark worker failed for {what}: {out.last_error_line}",
                        "run `keras-edge run` on the same target to see the error")
    data = out.data
    if "variant" not in data:  # the worker's {"error", "fix"}
        raise EdgeError(data["error"], data.get("fix"))
    return BenchResult(**data)


def bench(config: BenchConfig, progress: Callable[[str], None] = lambda s: None) -> BenchReport:
    """Measure every requested (variant, threads) pair; the first failure of the target stops it."""
    results = []
    for job in jobs(config):
        progress(f"{job['variant'] or Path(config.target).name} threads={job['threads']} accelerator={job['accelerator']}")
        results.append(run_job(job))
    first = results[0] if results else None
    env = environment(runtime=first.runtime if first else None, backend=first.backend if first else None)
    return BenchReport(env, results)


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Write JSON next to its final name, then rename: an interrupted write leaves nothing half-done."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return replace_file(p, json.dumps(data, indent=2) + "\n")
