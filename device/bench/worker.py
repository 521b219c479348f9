"""One benchmark measurement in a fresh process: ``python -P -m keras_edge.device.bench.worker JOB_JSON OUT_JSON``.

Started by :mod:`.bench` with an argument list. Writes a :class:`.bench.BenchResult` as JSON to
OUT_JSON, or ``{"error", "fix"}`` for a user-facing failure.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np

from .measure import BenchResult, latency_stats
from ..engine.core import EngineOptions, load, sample_inputs
from ..engine.sysinfo import peak_rss_mb
from ..contract.errors import EdgeError
from ..engine.target import open_target


def measure(job: dict[str, Any]) -> BenchResult:
    target = open_target(job["target"], job["variant"])
    shapes = (tuple(job["input_shape"]),) if job.get("input_shape") else target.input_shapes
    engine = load(target.model, EngineOptions(threads=job["threads"], accelerator=job["accelerator"],
                                              fallback=job["fallback"], gpu_delegate=job["gpu_delegate"],
                                              input_shapes=shapes, gpu_timeout=job.get("gpu_timeout", 120.0)))
    for i, x in enumerate(sample_inputs(engine)):
        engine.set_input(i, x)
    # on a GPU backend engine.invoke reads every output, so each timing includes completion
    invoke, clock = engine.invoke, time.perf_counter_ns
    t0 = clock()
    invoke()
    first_ms = (clock() - t0) / 1e6
    for _ in range(job["warmup"]):
        invoke()
    times: list[int] = []
    min_ns, runs = int(job["min_seconds"] * 1e9), job["runs"]
    start = clock()
    while len(times) < runs or clock() - start < min_ns:
        t0 = clock()
        invoke()
        times.append(clock() - t0)
    result = BenchResult(variant=job["variant"] or target.name, threads=engine.threads, backend=str(engine.backend),
                         runtime=engine.runtime.label, bytes=target.model.stat().st_size, runs=len(times),
                         init_ms=engine.init_ms, first_ms=first_ms, **latency_stats(times), rss_mb=peak_rss_mb(),
                         notes=list(engine.notes), accelerator=str(job["accelerator"]),
                         adapter=engine.describe().get("adapter"), gpu=dict(engine.gpu_info))
    if job.get("e2e"):
        result.e2e = end_to_end(job, target, engine, max(10, min(runs, 30)))
        result.notes += result.e2e.pop("notes")
    return result


def end_to_end(job: dict[str, Any], target, engine, n: int) -> dict[str, Any]:
    """Per image: read + decode + preprocess + inference, full-size decode and (for JPEGs) reduced."""
    from pathlib import Path

    from ..inputs.pipeline import prepare, reduce_factor, tolerance
    from ..run.runner import RunConfig, Runner

    runner = Runner(target, engine, RunConfig(target=job["target"], preprocess=job.get("preprocess")))
    plan = runner._need_plan()
    path = Path(job["e2e"])

    def once(reduce: int) -> tuple[float, float, float, float, np.ndarray]:
        t0 = time.perf_counter_ns()
        data = path.read_bytes()
        p = prepare(data, str(path), plan, reduce)
        t1 = time.perf_counter_ns()
        engine.set_input(0, p.tensor)
        engine.invoke()
        t2 = time.perf_counter_ns()
        return p.decode_ms, p.preprocess_ms, (t2 - t1) / 1e6, (t2 - t0) / 1e6, p.tensor

    data = path.read_bytes()
    f = reduce_factor(data, plan.spec)
    out: dict[str, Any] = {"image": str(path), "reduce_factor": f,
                           "notes": [n for n in runner.notes if n not in engine.notes]}
    for label, reduce in (("full", 1),) + ((("reduced", f),) if f > 1 else ()):
        once(reduce)  # warm caches
        rows = np.array([once(reduce)[:4] for _ in range(n)])
        med = np.median(rows, axis=0)
        out[label] = {"decode_ms": med[0], "preprocess_ms": med[1], "infer_ms": med[2], "total_ms": med[3], "runs": n}
    if f > 1:
        a, b = once(1)[4].astype(np.float64), once(f)[4].astype(np.float64)
        out["reduced"]["max_error"] = float(np.max(np.abs(a - b)))
        out["reduced"]["tolerance"] = tolerance(plan)
        out["reduced"]["within_tolerance"] = out["reduced"]["max_error"] <= tolerance(plan)
    out["rss_mb"] = peak_rss_mb()
    return json.loads(json.dumps(out, default=float))


def main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    try:
        data = asdict(measure(job))
        code = 0
    except EdgeError as e:
        data, code = {"error": e.what, "fix": e.fix}, 2
    with open(out, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
