"""``keras-edge doctor``: what this machine offers the runner, each item actually tried.

Runtimes are imported *and* made to run a tiny model (so a ``tflite_runtime`` that imports under
numpy 2 but cannot run is reported as such, with the fix); the GPU accelerator is tried in a child
process (a driver crash or hang becomes one line), its adapter named with its kind and driver, and
its output compared with the CPU's; what the GPU path needs on this board is checked item by item. On a workstation with TensorFlow installed it also reports
TensorFlow's version and GPUs, setting memory growth before first use as TensorFlow recommends.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.core import Accelerator, Backend, EngineOptions, load
from ..contract.errors import EdgeError
from ..engine.gpu import DEFAULT_TIMEOUT_S, probe, requirements
from ..engine.runtime import captured_stderr, probe_all, select_runtime
from ..engine.sysinfo import environment, litert_gpu_missing_flags


def cameras() -> list[dict[str, Any]]:
    """Video devices present (/dev/video*), and whether OpenCV can open each."""
    found = []
    for dev in sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p)):
        index = dev.removeprefix("/dev/video")
        if not index.isdigit():
            continue
        entry: dict[str, Any] = {"device": dev, "index": int(index), "opens": False}
        try:
            import cv2

            with captured_stderr():
                cap = cv2.VideoCapture(int(index))
                entry["opens"] = bool(cap.isOpened())
                cap.release()
        except ImportError:
            entry["error"] = "OpenCV is not installed"
        found.append(entry)
    return found


def opencv() -> dict[str, Any]:
    if importlib.util.find_spec("cv2") is None:
        return {"installed": False, "fix": "pip install opencv-python-headless"}
    import cv2

    return {"installed": True, "version": cv2.__version__, "threads": cv2.getNumThreads(),
            "optimized": bool(cv2.useOptimized())}


def gpu(library: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Try the GPU path on a tiny model and compare its output with the CPU's.

    LiteRT's GPU accelerator is tried in a child process with a time limit: with TensorFlow loaded in
    this process (``probe_all`` imports it on a workstation), some Vulkan drivers crash it with SIGSEGV.
    """
    from ..engine.probe_model import PROBE_TFLITE

    report: dict[str, Any] = {"available": False, "checks": requirements()}
    with tempfile.TemporaryDirectory(prefix="keras-edge-doctor-") as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(PROBE_TFLITE)
        if library or not select_runtime().has_gpu_accelerator:
            return {**report, **_gpu_in_process(path, library)}
        missing = litert_gpu_missing_flags()
        if missing:
            return {**report, "reason": f"LiteRT's GPU accelerator needs CPU features this CPU lacks ({', '.join(missing)})"}
        p = probe(path, threads=1, timeout=timeout)
    report.update(backend=str(Backend.GPU_LITERT), adapter=p.adapter.to_dict() if p.adapter else None,
                  vulkan=p.vulkan, vulkan_error=p.vulkan_error, probe_ms=round(p.wall_ms, 1))
    if not p.ok:
        return {**report, "reason": p.reason}
    return {**report, "available": True, "max_abs_vs_cpu": p.max_abs_vs_cpu,
            "agrees_with_cpu": p.max_abs_vs_cpu is not None and p.max_abs_vs_cpu < 1e-2,
            "software": bool(p.adapter and p.adapter.is_software), "compile_ms": p.compile_ms}


def _gpu_in_process(path: Path, library: str | None) -> dict[str, Any]:
    """A GPU delegate library (or a runtime without LiteRT's accelerator), loaded in this process."""
    try:
        g = load(path, EngineOptions(threads=1, accelerator=Accelerator.GPU, fallback=False, gpu_delegate=library))
    except EdgeError as e:
        return {"available": False, "reason": e.what}
    x = np.random.default_rng(0).uniform(-1, 1, g.inputs[0].shape).astype(np.float32)
    got = g.run([x])[0]
    want = load(path, EngineOptions(threads=1)).run([x])[0]
    err = float(np.max(np.abs(got - want)))
    return {"available": True, "backend": str(g.backend), "adapter": None, "max_abs_vs_cpu": err,
            "agrees_with_cpu": err < 1e-2, "software": False}


def tensorflow() -> dict[str, Any] | None:
    """TensorFlow's version and GPUs, when TensorFlow is installed (a workstation); None on a board."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with captured_stderr():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        growth = []
        for d in gpus:
            try:
                tf.config.experimental.set_memory_growth(d, True)  # before first use, or it raises
                growth.append(True)
            except RuntimeError:
                growth.append(False)
    return {"version": tf.__version__, "gpus": [{"name": d.name, "memory_growth": g} for d, g in zip(gpus, growth)]}


def diagnose(gpu_delegate: str | None = None, gpu_timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Everything ``doctor`` reports, as one JSON-ready dict."""
    runtimes = [p.to_dict() for p in probe_all()]
    chosen = next((r for r in runtimes if r["usable"]), None)
    report: dict[str, Any] = {
        "runtimes": runtimes,
        "selected_runtime": f"{chosen['name']} {chosen['version']}" if chosen else None,
        "system": environment(runtime=f"{chosen['name']} {chosen['version']}" if chosen else None),
        "opencv": opencv(),
        "cameras": cameras(),
        "gpu": gpu(gpu_delegate, gpu_timeout) if chosen else {"available": False, "reason": "no usable runtime"},
    }
    report["system"].pop("backend", None)
    report["tensorflow"] = tensorflow()
    return report
