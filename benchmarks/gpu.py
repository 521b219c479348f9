"""GPU against CPU, side by side, with completion: what LiteRT's GPU accelerator really costs here.

For each model and variant, ``keras-edge bench --accelerator gpu`` measures the GPU and the CPU in fresh
worker processes (init, first inference, median/p90/p99, peak RSS), every GPU timing reading the
outputs (``run_by_index`` returns before the GPU is done). Beside it, in its own process, the number the
old benchmark reported: ``run_by_index`` timed alone, the queue without the work. The adapter is named
with its kind; on a machine whose only adapter is a software rasterizer (Mesa's llvmpipe) the result
says so, and judges nothing about GPUs from it.

Run by ``benchmarks/run.py`` (family ``gpu``) → ``results/gpu.json``. Also standalone:
``python -m benchmarks.gpu --out benchmarks/results/gpu.json`` (uses the bundles under build/bench).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .common import RESULTS, Environment, environment, write_json
from .models import BenchModel

VARIANTS = ("fp32", "fp16", "int8")
QUEUE_CALLS = 10


@dataclass(frozen=True)
class Side:
    """One backend's numbers for one variant (a fresh process each)."""

    asked: str
    backend: str
    init_ms: float
    first_ms: float
    median_ms: float
    p90_ms: float
    p99_ms: float
    rss_mb: float
    runs: int
    probe_ms: float | None = None       # the GPU compile + first run tried in a child (part of init_ms)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Row:
    model: str
    variant: str
    gpu: Side
    cpu: Side
    gpu_time_over_cpu: float            # median GPU time / median CPU time: above 1, the CPU is faster
    queue_only_ms: float | None         # run_by_index alone, no output read: what the old bench timed


@dataclass(frozen=True)
class GpuResult:
    environment: Environment
    adapter: dict[str, Any] | None
    vulkan: list[dict[str, Any]] | None
    rows: list[Row]
    verdict: str
    notes: list[str] = field(default_factory=list)


def side(r) -> Side:
    return Side(r.accelerator, r.backend, r.init_ms, r.first_ms, r.median_ms, r.p90_ms, r.p99_ms, r.rss_mb, r.runs,
                r.gpu.get("probe_ms"), list(dict.fromkeys(r.notes)))


def queue_only(model_path: Path) -> float | None:
    """Median ms of ``run_by_index`` without reading an output, in a fresh process (no TensorFlow there)."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--queue-only", str(model_path)],
                          capture_output=True, text=True, timeout=1800, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    lines = proc.stdout.strip().splitlines()
    try:
        return float(json.loads(lines[-1])["queue_only_ms"]) if proc.returncode == 0 and lines else None
    except (ValueError, KeyError):
        return None


def _queue_only_child(model_path: str) -> None:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HW
    from ai_edge_litert.options import Options

    from keras_edge.device.engine.gpu import ensure_runtime_dir
    from keras_edge.device.engine.runtime import captured_fd, captured_stderr

    ensure_runtime_dir()
    with captured_stderr(), captured_fd(1):
        cm = CompiledModel.from_file(model_path, options=Options(hardware_accelerators=HW.GPU))
        ins, outs = cm.create_input_buffers(0), cm.create_output_buffers(0)
        cm.run_by_index(0, ins, outs)
        outs[0].read(1, np.float32 if "fp" in Path(model_path).stem else np.uint8)  # warm: shaders compiled
        times = []
        for _ in range(QUEUE_CALLS):
            t0 = time.perf_counter_ns()
            cm.run_by_index(0, ins, outs)
            times.append(time.perf_counter_ns() - t0)
        outs[0].read(1, np.float32 if "fp" in Path(model_path).stem else np.uint8)
    print(json.dumps({"queue_only_ms": float(np.median(times)) / 1e6}))


def probe_vulkan() -> list[dict[str, Any]] | None:
    """The Vulkan devices, queried in the GPU probe's child: in this process (TensorFlow loaded, with its own
    LLVM) llvmpipe can crash."""
    import tempfile

    from keras_edge.device.engine.gpu import probe
    from keras_edge.device.engine.probe_model import PROBE_TFLITE

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(PROBE_TFLITE)
        return probe(path).vulkan


def measure(model: BenchModel, runs: int, log=print) -> tuple[list[Row], dict | None]:
    from keras_edge.device.bench.measure import BenchConfig, bench

    cfg = BenchConfig(target=str(model.bundle), variants=",".join(VARIANTS), runs=runs, warmup=2, min_seconds=0,
                      accelerator="gpu")
    rep = bench(cfg, progress=lambda s: log(f"  gpu: {model.name} {s}"))
    rows, adapter = [], None
    by = {(r.variant, r.accelerator): r for r in rep.results}
    for v in VARIANTS:
        g, c = by[(v, "gpu")], by[(v, "cpu")]
        adapter = adapter or g.adapter
        q = queue_only(model.bundle / f"{v}.tflite") if g.backend.startswith("gpu") else None
        rows.append(Row(model.name, v, side(g), side(c), round(g.median_ms / c.median_ms, 2), q))
    return rows, adapter


def verdict(rows: list[Row], adapter: dict | None) -> str:
    mn = next((r for r in rows if r.model == "mobilenetv2" and r.variant == "fp32"), rows[0])
    ratio = (f"{mn.model} {mn.variant}: GPU path median {mn.gpu.median_ms:.1f} ms against {mn.cpu.median_ms:.1f} ms "
             f"on the CPU (GPU time / CPU time {mn.gpu_time_over_cpu:g}, completion included"
             + (f"; without completion it would have read {mn.queue_only_ms:.3f} ms" if mn.queue_only_ms else "") + ")")
    if adapter is None:
        return f"no GPU adapter ran the models here; {ratio}"
    if adapter.get("software"):
        return (f"the only adapter here is {adapter['name']} ({adapter.get('backend')}), a software rasterizer on the "
                f"CPU, not a GPU: {ratio}. This machine cannot confirm or refute the article's GPU claim; it shows "
                "that a GPU path must be verified (adapter kind, completion-inclusive timing) before it is trusted")
    return f"hardware adapter {adapter['name']} ({adapter.get('type')}): {ratio}"


def run(models: list[BenchModel], runs: int = 10, log=print) -> GpuResult:
    rows: list[Row] = []
    adapter = None
    for m in models:
        got, a = measure(m, runs, log)
        rows += got
        adapter = adapter or a
    vulkan = probe_vulkan()
    notes = ["each side is a fresh `keras-edge bench` worker; GPU init includes the compile and first run tried in "
             "a child process with a time limit (probe_ms), then the compile in the worker",
             "a first GPU compile fills the driver's shader cache (llvmpipe: 22-29 s for MobileNetV2 on 2 cores); "
             "these runs found it warm, as a board does after its first start",
             "int8 on the GPU: the accelerator dequantizes it and computes in floating point, so it gains nothing "
             "over fp16 there; the CPU's int8 kernels are where int8 pays"]
    return GpuResult(environment(), adapter, vulkan, rows, verdict(rows, adapter), notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS / "gpu.json")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--queue-only", metavar="MODEL", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.queue_only:
        _queue_only_child(args.queue_only)
        return 0
    from .models import digits_model, imagenet_model

    models = [imagenet_model("mobilenetv2", log=print), digits_model(log=print)]
    write_json(args.out, run(models, args.runs))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
