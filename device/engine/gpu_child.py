"""The GPU probe's child process: ``python -P -m keras_edge.device.engine.gpu_child JOB_JSON OUT_JSON``.

Started by :func:`.gpu.probe` through :mod:`.launcher` (an argument list, JSON in and out). It compiles the
model on LiteRT's GPU accelerator, runs it once beside the CPU and, for ``auto``, times a short trial; a
driver that hangs or crashes takes only this process with it.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np

from ..contract.errors import EdgeError
from .core import Accelerator, EngineOptions, load, sample_inputs
from .gpu import TRIAL_RUNS, VULKAN_SEEN, GpuProbe, ensure_runtime_dir, last_adapter, vulkan_devices
from .sysinfo import peak_rss_mb


def _child(job: dict[str, Any]) -> GpuProbe:

    result = GpuProbe(ok=False)
    try:
        result.vulkan = vulkan_devices()
        VULKAN_SEEN[:] = result.vulkan
    except (OSError, AttributeError) as e:
        result.vulkan_error = str(e)
    shapes = tuple(tuple(s) if s else None for s in job["input_shapes"])
    opts = EngineOptions(threads=job["threads"], accelerator=Accelerator.GPU, fallback=False, gpu_timeout=0,
                         input_shapes=shapes)
    try:
        g = load(job["model"], opts)
    except EdgeError as e:
        result.reason = e.what
        result.adapter = last_adapter(result.vulkan)
        return result
    result.ok, result.adapter, result.compile_ms = True, g.adapter, g.init_ms
    result.integer_quantized = bool(g.gpu_info.get("integer_quantized"))
    result.fully_accelerated, result.unsupported = g.gpu_info.get("fully_accelerated"), g.gpu_info.get("unsupported", [])
    xs = sample_inputs(g)
    got = g.run(xs)
    c = load(job["model"], EngineOptions(threads=job["threads"], input_shapes=shapes))
    want = c.run(xs)
    result.max_abs_vs_cpu = float(max(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))
                                      for a, b in zip(got, want)))
    if job.get("trial") and g.adapter is not None and not g.adapter.is_software:
        result.gpu_ms, result.cpu_ms = _median_ms(g, xs), _median_ms(c, xs)
    result.rss_mb = peak_rss_mb()
    return result


def _median_ms(engine, xs) -> float:
    times = []
    for _ in range(TRIAL_RUNS):
        t0 = time.perf_counter_ns()
        engine.run(xs)  # reads every output: the GPU's work has completed
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e6


def main(argv: list[str]) -> int:
    job, out = json.loads(argv[0]), argv[1]
    ensure_runtime_dir()
    result = _child(job)
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result.to_dict(), f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
