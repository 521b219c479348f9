"""A loaded ``.tflite`` model, ready to invoke, on the backend that actually runs it.

CPU runs the runtime's interpreter with XNNPACK (its default delegate). ``gpu`` tries the GPU path
the installed runtime offers: a GPU delegate library given by path (``--gpu-delegate`` or
``$KERAS_EDGE_GPU_DELEGATE``) through ``load_delegate``, else LiteRT's own GPU accelerator. Any GPU
failure falls back to CPU and says why in one line, unless the caller insisted (``fallback=False``).
``auto`` keeps the GPU only on a hardware adapter that takes the whole model and beats the CPU in
a short timed trial; a software rasterizer (llvmpipe) is never chosen, and never called a GPU.

LiteRT's GPU compile is first tried in a child process with a time limit (``gpu_timeout``, seconds;
:mod:`.gpu`), so a driver that hangs or crashes becomes one line and a CPU fallback. On the GPU,
``invoke`` reads every output: ``run_by_index`` returns before the GPU has finished, and a timing
that stops there measures the queue, not the inference.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ..contract.errors import RuntimeUnavailable
from .backends import CPU, GPU_BACKENDS
from .interpreter import check_flatbuffer_bounds, check_tflite_file
from .runtime import RuntimeName, select_runtime
from .types import GPU_DELEGATE_ENV, Accelerator, Backend, Engine, EngineOptions, sample_inputs, tensor_specs

__all__ = ["GPU_DELEGATE_ENV", "Accelerator", "Backend", "Engine", "EngineOptions", "check_tflite_file", "load",
           "sample_inputs", "tensor_specs"]


def load(path: str | os.PathLike, options: EngineOptions = EngineOptions()) -> Engine:
    """Load ``path`` on the requested accelerator (falling back to CPU as the options allow)."""
    path = check_tflite_file(path)
    rt = select_runtime(options.runtime)
    if rt.name is not RuntimeName.LITERT:
        check_flatbuffer_bounds(path)
    t0 = time.perf_counter_ns()
    notes: list[str] = []
    seen: dict[str, Any] = {}
    if options.accelerator is not Accelerator.CPU:
        try:
            engine = _load_gpu(path, rt, options, seen)
        except RuntimeUnavailable as e:
            if options.accelerator is Accelerator.GPU and not options.fallback:
                raise
            if options.accelerator is Accelerator.GPU:
                notes.append(f"GPU not used: {e.what}; running on CPU")
            else:
                notes.append(f"auto: GPU not used ({e.what}); running on CPU")
        else:
            engine.init_ms = (time.perf_counter_ns() - t0) / 1e6
            return engine
    engine = CPU.load(path, rt, options, seen)
    engine.init_ms = (time.perf_counter_ns() - t0) / 1e6
    engine.notes[:0] = notes
    engine.adapter = seen.get("adapter")
    engine.gpu_info = seen.get("info", {})
    return engine


def _load_gpu(path: Path, rt, options: EngineOptions, seen: dict[str, Any]) -> Engine:
    """The first GPU backend that applies here (a delegate library given by path first, then LiteRT's own)."""
    why = []
    for backend in GPU_BACKENDS.values():
        reason = backend.available(rt, options)
        if reason is None:
            return backend.load(path, rt, options, seen)
        why.append(reason)
    raise RuntimeUnavailable("; ".join(why[::-1]), f"give a GPU delegate library path, or set {GPU_DELEGATE_ENV}")
