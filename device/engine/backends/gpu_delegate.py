"""A GPU delegate library loaded with ``load_delegate`` (``--gpu-delegate PATH`` or ``$KERAS_EDGE_GPU_DELEGATE``):
the TFLite GPU delegate a board's vendor builds, for runtimes without LiteRT's own accelerator."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from ...contract.errors import ModelError, RuntimeUnavailable
from ..runtime import Runtime
from ..interpreter import attempt, first_error, has_delegate_node, interpreter, interpreter_engine, trial_run
from ..types import GPU_DELEGATE_ENV, Backend, Engine, EngineOptions


def library(options: EngineOptions) -> str | None:
    return options.gpu_delegate or os.environ.get(GPU_DELEGATE_ENV)


def available(rt: Runtime, options: EngineOptions) -> str | None:
    """None when this backend applies, else why not."""
    return None if library(options) else "no GPU delegate library was given"


def load(path: Path, rt: Runtime, options: EngineOptions, seen: dict) -> Engine:
    lib = library(options)
    # try the lib with ctypes first: a failed load_delegate leaves a half-built object that
    # complains on stderr when it is collected
    _, err, native = attempt(lambda: ctypes.CDLL(lib))
    if err is None:
        delegate, err, native = attempt(lambda: rt.load_delegate(lib))
    if err is not None:
        raise RuntimeUnavailable(f"GPU delegate {lib} did not load ({first_error(str(err), native)})",
                                 "check the path and that the board's GPU driver is installed")
    try:
        it = interpreter(path, rt, options, [delegate])
    except ModelError as e:
        raise RuntimeUnavailable(f"GPU delegate {lib} could not prepare the model ({e.what})") from None
    if not has_delegate_node(it):
        raise RuntimeUnavailable(f"GPU delegate {lib} took no part of the model")
    engine = interpreter_engine(path, rt, it, Backend.GPU_DELEGATE, options.num_threads, keep=delegate)
    trial_run(engine)
    return engine
