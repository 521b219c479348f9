"""The engine's vocabulary: what to load a model with (:class:`EngineOptions`), what runs it (:class:`Backend`)
and the loaded model itself (:class:`Engine`): set inputs, ``invoke()``, read outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..contract.bundle import TensorSpec
from ..contract.errors import ConfigError
from . import gpu
from .runtime import Runtime, default_threads

GPU_DELEGATE_ENV = "KERAS_EDGE_GPU_DELEGATE"

class Accelerator(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"

class Backend(StrEnum):
    CPU_XNNPACK = "cpu-xnnpack"
    CPU = "cpu"                      # builtin kernels only (XNNPACK took no node)
    GPU_LITERT = "gpu-litert"        # LiteRT CompiledModel with the GPU accelerator
    GPU_DELEGATE = "gpu-delegate"    # a GPU delegate library loaded with load_delegate

    @property
    def is_gpu(self) -> bool:
        """A GPU-accelerator backend (whether its adapter is a real GPU is the adapter's to say)."""
        return self in (Backend.GPU_LITERT, Backend.GPU_DELEGATE)

@dataclass(frozen=True)
class EngineOptions:
    """How to load a model: threads (None: all cores), accelerator, GPU fallback and input shapes."""

    threads: int | None = None
    accelerator: Accelerator = Accelerator.CPU
    fallback: bool = True
    gpu_delegate: str | None = None
    runtime: str | None = None
    # seconds the GPU compile may take in its child process; 0: compile in this process, no limit
    gpu_timeout: float = gpu.DEFAULT_TIMEOUT_S
    # per input index: the full shape to resize a dynamic input to before allocation
    input_shapes: tuple[tuple[int, ...] | None, ...] = ()
    # load and run the model once in a forked child first (see .trial): a file from anyone cannot crash this
    # process. Off only for files this process has just written itself (the converter's own variants).
    trial: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "accelerator", Accelerator(self.accelerator))
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads", f"{self.threads} is not positive", "give 1 or more threads")
        if self.gpu_timeout < 0:
            raise ConfigError("gpu_timeout", f"{self.gpu_timeout:g} is negative", "give seconds, or 0 for no child probe")

    @property
    def num_threads(self) -> int:
        return self.threads or default_threads()

@dataclass
class Engine:
    """A model on one backend: set inputs, ``invoke()``, read outputs. ``invoke`` is the runtime's own."""

    path: Path
    runtime: Runtime
    backend: Backend
    threads: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    invoke: Callable[[], None]
    set_input: Callable[[int, np.ndarray], None]
    output: Callable[[int], np.ndarray]
    init_ms: float = 0.0
    notes: list[str] = field(default_factory=list)   # fallbacks and assumptions, one line each
    adapter: gpu.Adapter | None = None                # the GPU adapter, when one was found (used or not)
    gpu_info: dict[str, Any] = field(default_factory=dict)   # compile/probe times, delegation, auto's trial
    _keep: Any = None                                   # objects that must outlive the callables

    def run(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """Set every input, invoke once, return copies of every output."""
        for i, a in enumerate(arrays):
            self.set_input(i, a)
        self.invoke()
        return [self.output(i) for i in range(len(self.outputs))]

    def describe(self) -> dict[str, Any]:
        d = {"runtime": str(self.runtime.name), "runtime_version": self.runtime.version,
             "backend": str(self.backend), "threads": self.threads}
        if self.adapter is not None:
            # "software": true marks a rasterizer on the CPU; "adapter_used": false when auto declined it
            d["adapter"] = {**self.adapter.to_dict(), "adapter_used": self.backend.is_gpu}
        return d

def tensor_specs(details: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=d["name"], shape=tuple(int(s) for s in d["shape"]), dtype=np.dtype(d["dtype"]).name,
                            scale=float(d["quantization"][0]), zero_point=int(d["quantization"][1]))
                 for d in details)

def sample_inputs(engine: Engine) -> list[np.ndarray]:
    """Seeded random inputs covering each input's value range (latency does not depend on content)."""
    rng = np.random.default_rng(0)
    out = []
    for t in engine.inputs:
        dt = np.dtype(t.dtype)
        if dt.kind == "f":
            out.append(rng.uniform(-1, 1, t.shape).astype(dt))
        else:
            info = np.iinfo(dt)
            out.append(rng.integers(max(info.min, -128), min(info.max, 255) + 1, t.shape).astype(dt))
    return out
