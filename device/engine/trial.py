"""A model file from anyone must not crash this process: sanity checks, then one trial run in a forked child.

The TFLite interpreter verifies a file's flatbuffer structure, but not what the values mean: a zero
point of -3,019,899,008 on an int8 tensor (one flipped byte) passes the verifier and then crashes
XNNPACK with SIGSEGV while it prepares the model. :func:`check_quantization` refuses such values by
name. Whatever no check foresees, :func:`trial` finds out in a throwaway copy of this process: a
forked child creates the interpreter, allocates and runs one inference on zeros; if the child dies
of a signal or overruns its time, the model is refused with one line before this process touches it.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..contract.errors import ModelError

_RANGES = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max) for t in (np.int8, np.uint8, np.int16, np.int32, np.int64)}


def check_quantization(it: Any, path: Path) -> None:
    """Refuse tensors whose quantization cannot be right: zero points outside their type, scales that are
    negative or not finite, or per-channel parameters that do not match the tensor's channels."""
    for d in it.get_tensor_details():
        q = d.get("quantization_parameters") or {}
        scales, zeros = np.asarray(q.get("scales", [])), np.asarray(q.get("zero_points", []))
        if not scales.size and not zeros.size:
            continue
        name, dtype = d.get("name", d.get("index")), np.dtype(d["dtype"])
        bad = None
        if scales.size and not (np.all(np.isfinite(scales)) and np.all(scales >= 0)):
            bad = f"scale {scales[~(np.isfinite(scales) & (scales >= 0))][0]}"
        elif dtype in _RANGES and zeros.size and (zeros.min() < _RANGES[dtype][0] or zeros.max() > _RANGES[dtype][1]):
            bad = f"zero point {int(zeros.min() if zeros.min() < _RANGES[dtype][0] else zeros.max())} outside {dtype}"
        elif scales.size > 1:
            axis, shape = int(q.get("quantized_dimension", 0)), list(d.get("shape", []))
            if not 0 <= axis < len(shape) or shape[axis] != scales.size or zeros.size not in (1, scales.size):
                bad = f"{scales.size} per-channel scales on a tensor of shape {shape} (axis {axis})"
        if bad:
            raise ModelError(f"{path} is damaged: tensor {name!r} has quantization {bad}",
                             "copy the file again or reconvert it")


def trial(build: Callable[[], Any], path: Path, timeout_s: float) -> None:
    """Run ``build()`` (which makes, allocates and returns an interpreter) and one inference on zeros in a
    forked child; raise :class:`ModelError` when the child dies of a signal or takes longer than ``timeout_s``.

    A child that fails with a Python exception is not this check's business: the real load says why.
    Where there is no fork (not Linux), nothing is tried.
    """
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:   # the child: quiet, one try, and out without running this process's exit handlers
        try:
            faulthandler.disable()   # its crash is the parent's finding, not a report on the parent's stderr
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            it = build()
            for d in it.get_input_details():
                it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
            it.invoke()
        except BaseException:  # noqa: BLE001 - reported by the real load
            pass
        os._exit(0)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise ModelError(f"{path} did not finish one inference in {timeout_s:g} s in a trial run",
                             "the file may be damaged; if it is a very large model on a slow board, raise "
                             "KERAS_EDGE_MAX_TRIAL_SECONDS")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name if os.WTERMSIG(status) in signal.Signals._value2member_map_ \
            else f"signal {os.WTERMSIG(status)}"
        raise ModelError(f"{path} crashed the interpreter ({name}) in a trial run, so it is not loaded here",
                         "the file is damaged or hostile; copy it again or reconvert it")
