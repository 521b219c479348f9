"""``keras-edge doctor``: what this machine offers the runner, each item actually tried.

Runtimes are imported *and* made to run a tiny model (so a ``tflite_runtime`` that imports under
numpy 2 but cannot run is reported as such, with the fix); the GPU accelerator or delegate is loaded
and its output compared with the CPU's. On a workstation with TensorFlow installed it also reports
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

from .engine import Accelerator, EngineOptions, load
from .errors import EdgeError
from .runtime import captured_stderr, probe_all
from .sysinfo import environment


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


def gpu(library: str | None = None) -> dict[str, Any]:
    """Try the GPU path on a tiny model and compare its output with the CPU's."""
    from .probe_model import PROBE_TFLITE

    with tempfile.TemporaryDirectory(prefix="keras-edge-doctor-") as tmp:
        path = Path(tmp) / "probe.tflite"
        path.write_bytes(PROBE_TFLITE)
        try:
            g = load(path, EngineOptions(threads=1, accelerator=Accelerator.GPU, fallback=False, gpu_delegate=library))
        except EdgeError as e:
            return {"available": False, "reason": e.what}
        x = np.random.default_rng(0).uniform(-1, 1, g.inputs[0].shape).astype(np.float32)
        got = g.run([x])[0]
        want = load(path, EngineOptions(threads=1)).run([x])[0]
        err = float(np.max(np.abs(got - want)))
        return {"available": True, "backend": str(g.backend), "max_abs_vs_cpu": err, "agrees_with_cpu": err < 1e-2}


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


def diagnose(gpu_delegate: str | None = None) -> dict[str, Any]:
    """Everything ``doctor`` reports, as one JSON-ready dict."""
    runtimes = [p.to_dict() for p in probe_all()]
    chosen = next((r for r in runtimes if r["usable"]), None)
    report: dict[str, Any] = {
        "runtimes": runtimes,
        "selected_runtime": f"{chosen['name']} {chosen['version']}" if chosen else None,
        "system": environment(runtime=f"{chosen['name']} {chosen['version']}" if chosen else None),
        "opencv": opencv(),
        "cameras": cameras(),
        "gpu": gpu(gpu_delegate) if chosen else {"available": False, "reason": "no usable runtime"},
    }
    report["system"].pop("backend", None)
    report["tensorflow"] = tensorflow()
    return report
