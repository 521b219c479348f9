"""The CPU backend: the runtime's interpreter with XNNPACK (its default delegate), or its builtin kernels
where XNNPACK takes no part of the model."""

from __future__ import annotations

from pathlib import Path

from ..runtime import Runtime
from ..interpreter import has_delegate_node, interpreter, interpreter_engine
from ..types import Backend, Engine, EngineOptions


def available(rt: Runtime, options: EngineOptions) -> str | None:
    return None     # always


def load(path: Path, rt: Runtime, options: EngineOptions, seen: dict) -> Engine:
    it = interpreter(path, rt, options)
    backend = Backend.CPU_XNNPACK if has_delegate_node(it) else Backend.CPU
    engine = interpreter_engine(path, rt, it, backend, options.num_threads)
    if backend is Backend.CPU:
        engine.notes.append("XNNPACK took no part of this model; builtin CPU kernels run it")
    return engine
