"""LiteRT's own GPU accelerator (``CompiledModel``; WebGPU over Vulkan/OpenCL): compiled first in a child process
with a time limit (:mod:`..gpu`), then here. ``auto`` keeps it only on a hardware adapter that takes the whole model
and beats the CPU in a short trial; ``invoke`` reads every output, so a timing includes completion."""

from __future__ import annotations

import atexit
import gc
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ...contract.errors import RuntimeUnavailable
from .. import gpu
from ..interpreter import attempt, first_error, interpreter, trial_run
from ..runtime import Runtime, captured_fd, captured_stderr
from ..sysinfo import litert_gpu_missing_flags
from ..types import Accelerator, Backend, Engine, EngineOptions, tensor_specs


def available(rt: Runtime, options: EngineOptions) -> str | None:
    """None when this backend applies, else why not."""
    if not rt.has_gpu_accelerator:
        return f"{rt.label} has no built-in GPU accelerator"
    missing = litert_gpu_missing_flags()
    if missing:
        return (f"{rt.label}'s GPU accelerator needs CPU features this CPU lacks ({', '.join(missing)}) and would "
                "crash the process with SIGILL")
    return None


def load(path: Path, rt: Runtime, options: EngineOptions, seen: dict) -> Engine:
    return _load_litert_gpu_checked(path, rt, options, seen)


def _load_litert_gpu_checked(path: Path, rt: Runtime, options: EngineOptions, seen: dict[str, Any]) -> Engine:
    """Probe the GPU compile in a child (time limit, crash-proof), decide for ``auto``, then load it here."""
    probe = None
    if options.gpu_timeout > 0:
        probe = gpu.probe(path, options.num_threads, options.input_shapes,
                          trial=options.accelerator is Accelerator.AUTO, timeout=options.gpu_timeout)
        seen["adapter"] = probe.adapter
        seen["info"] = {"probe_ms": round(probe.wall_ms, 1), "probe_rss_mb": probe.rss_mb,
                        "fully_accelerated": probe.fully_accelerated, "unsupported": probe.unsupported}
        if not probe.ok:
            raise RuntimeUnavailable(probe.reason or "the GPU probe failed")
        if options.accelerator is Accelerator.AUTO:
            seen["info"].update(trial_gpu_ms=probe.gpu_ms, trial_cpu_ms=probe.cpu_ms)
            _auto_decision(probe)
    engine = _load_litert_gpu(path, rt, options)
    if probe is not None:
        engine.adapter = probe.adapter or engine.adapter
        engine.gpu_info = {**seen["info"], **engine.gpu_info}
    a = engine.adapter
    if options.accelerator is Accelerator.AUTO and probe is not None and a is not None:
        engine.notes.append(f"auto: GPU chosen: {a.describe()} ran the model in {probe.gpu_ms:.2f} ms against "
                            f"{probe.cpu_ms:.2f} ms on the CPU ({gpu.TRIAL_RUNS}-run trial, completion included)")
    elif a is not None and a.is_software:
        engine.notes.append(f"the GPU adapter {a.name} is a {gpu.SOFTWARE_WORDS} ({a.backend or 'unknown API'}"
                            f"{', driver ' + a.driver if a.driver else ''}); --accelerator cpu is usually faster")
    elif a is None:
        engine.notes.append("the GPU accelerator did not name its adapter; it may not be a GPU")
    return engine

def _auto_decision(probe: gpu.GpuProbe) -> None:
    """``auto`` keeps the GPU only on a hardware adapter that takes the whole model and is faster."""
    a = probe.adapter
    if a is None:
        raise RuntimeUnavailable("the GPU accelerator did not name its adapter, so it cannot be shown to be a GPU")
    if a.is_software:
        raise RuntimeUnavailable(f"the only adapter, {a.name} on {a.backend or 'an unnamed API'}, is a {gpu.SOFTWARE_WORDS}")
    if not a.is_gpu:
        raise RuntimeUnavailable(f"the adapter {a.name} is of unknown kind; auto uses only a hardware GPU")
    if not probe.fully_accelerated:
        raise RuntimeUnavailable(f"the GPU accelerator cannot take the whole model ({len(probe.unsupported)} ops unsupported)")
    if probe.gpu_ms is None or probe.cpu_ms is None or probe.gpu_ms >= probe.cpu_ms:
        raise RuntimeUnavailable(f"the GPU {a.name} was not faster in a short trial: {probe.gpu_ms or 0:.2f} ms "
                                 f"against {probe.cpu_ms or 0:.2f} ms on the CPU")

class _QuietRelease:
    """Holds the compiled model; releasing it captures the teardown log LiteRT writes to fd 2.

    Released when the engine goes, or at exit (before interpreter shutdown, while capturing still works).
    """

    live: "weakref.WeakSet[_QuietRelease]" = weakref.WeakSet()

    def __init__(self, *objs: Any):
        self.objs: Any = objs
        if not _QuietRelease.live:
            atexit.register(_QuietRelease.release_all)
        _QuietRelease.live.add(self)

    def release(self) -> None:
        if self.objs is None:
            return
        try:
            with captured_stderr():
                self.objs = None
                gc.collect()
        except Exception:  # during interpreter shutdown the capture itself may be gone
            self.objs = None

    __del__ = release

    @staticmethod
    def release_all() -> None:
        for holder in list(_QuietRelease.live):
            holder.release()
        # LiteRT's static accelerator registry logs its own teardown after Python has finished; every
        # result is printed by now, so fd 2 is closed to that noise
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

def _load_litert_gpu(path: Path, rt: Runtime, options: EngineOptions) -> Engine:
    # CompiledModel has no quantization details; a metadata-only interpreter supplies them
    specs = interpreter(path, rt, EngineOptions(threads=1, input_shapes=options.input_shapes))
    gpu.ensure_runtime_dir()
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator as HW
    from ai_edge_litert.options import CpuOptions, Options

    accel = HW.GPU if options.accelerator is Accelerator.AUTO else HW.GPU | HW.CPU

    def compile_():
        cm = CompiledModel.from_file(str(path), options=Options(
            hardware_accelerators=accel, cpu_options=CpuOptions(num_threads=options.num_threads)))
        for i, d in enumerate(specs.get_input_details()):
            if any(int(s) < 0 for s in d.get("shape_signature", [])):
                cm.resize_input_tensor(i, [int(s) for s in d["shape"]])
        return cm, cm.is_fully_accelerated(), cm.create_input_buffers(0), cm.create_output_buffers(0)

    t0 = time.perf_counter_ns()
    with captured_fd(1) as logged_to_stdout:  # the GPU accelerator logs some lines to stdout
        compiled, err, native = attempt(compile_)
    native += logged_to_stdout[0]
    compile_ms = (time.perf_counter_ns() - t0) / 1e6
    adapter = gpu.remember(gpu.parse_adapter(native, gpu.VULKAN_SEEN))
    if err is not None:
        raise RuntimeUnavailable(f"LiteRT GPU accelerator failed ({_gpu_reason(str(err), native)})")
    cm, full, in_bufs, out_bufs = compiled
    unsupported, split = gpu.unsupported_ops(native), gpu.delegation(native)
    if split is not None and split[0] == 0:
        first = f" ({unsupported[0].split('. ')[0]})" if unsupported else ""
        raise RuntimeUnavailable(f"the GPU accelerator can run none of the model's {split[1]} ops{first}")
    if options.accelerator is Accelerator.AUTO and not full:
        raise RuntimeUnavailable("the GPU accelerator cannot take the whole model")
    ins, outs = tensor_specs(specs.get_input_details()), tensor_specs(specs.get_output_details())
    read: list[np.ndarray | None] = [None] * len(outs)

    def _read(i: int) -> np.ndarray:
        o = outs[i]
        return out_bufs[i].read(int(np.prod(o.shape)), np.dtype(o.dtype)).reshape(o.shape)

    def invoke() -> None:
        cm.run_by_index(0, in_bufs, out_bufs)
        for i in range(len(outs)):  # reading waits for the GPU: invoke includes completion
            read[i] = _read(i)

    def output(i: int) -> np.ndarray:
        return read[i] if read[i] is not None else _read(i)

    engine = Engine(path=path, runtime=rt, backend=Backend.GPU_LITERT, threads=options.num_threads,
                    inputs=ins, outputs=outs, invoke=invoke, set_input=lambda i, a: in_bufs[i].write(a),
                    output=output, adapter=adapter, _keep=_QuietRelease(cm, specs))
    engine.gpu_info = {"compile_ms": round(compile_ms, 1), "fully_accelerated": bool(full), "unsupported": unsupported,
                       "integer_quantized": _integer_quantized(specs),
                       "ops_on_gpu": split[0] if split else None, "ops_total": split[1] if split else None}
    if engine.gpu_info["integer_quantized"]:
        engine.notes.append("integer-quantized model on the GPU: the accelerator dequantizes it and computes in "
                            "floating point, so int8 gains nothing there; fp16 is the variant for a GPU")
    if not full:
        ops = "; ".join(u.split(". ")[0] for u in unsupported[:3]) + (f"; … {len(unsupported) - 3} more" if len(unsupported) > 3 else "")
        share = f"{split[0]} of the model's {split[1]} ops" if split else "part of the model"
        engine.notes.append(f"the GPU runs {share}; the rest runs on the CPU" + (f" (unsupported: {ops})" if unsupported else ""))
    trial_run(engine)
    return engine

def _integer_quantized(it: Any) -> bool:
    """Whether the model holds integer-quantized tensors (int8/uint8/int16 with a scale)."""
    try:
        details = it.get_tensor_details()
    except Exception:  # some runtimes refuse details of delegated tensors; say nothing then
        return False
    return any(np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0] != 0 for d in details)

def _gpu_reason(text: str, native: str) -> str:
    blob = text + "\n" + native
    for key in ("No adapters found", "Couldn't load Vulkan", "OpenCL", "not supported"):
        for ln in blob.splitlines():
            if key in ln:
                return ln.strip().split("] ")[-1][:160]
    return first_error(text, native)
