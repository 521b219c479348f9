"""Engine backends behind a registry: each is a file with ``available(runtime, options)`` (None when it applies,
else why not) and ``load(path, runtime, options, seen)``. :data:`GPU_BACKENDS` are tried in order for
``--accelerator gpu|auto``; any failure falls back to :data:`CPU` with one line saying why. Adding a backend
(an NPU delegate, say) is a file and a line here."""

from __future__ import annotations

from types import ModuleType

from . import cpu, gpu_delegate, gpu_litert

CPU: ModuleType = cpu
GPU_BACKENDS: dict[str, ModuleType] = {"gpu-delegate": gpu_delegate, "gpu-litert": gpu_litert}

__all__ = ["CPU", "GPU_BACKENDS"]
