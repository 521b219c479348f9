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

import atexit
import ctypes
import gc
import os
import sys
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable
import weakref

import numpy as np

from . import gpu
from ..contract.bundle import TensorSpec
from ..contract.errors import ConfigError, ModelError, RuntimeUnavailable
from .runtime import Runtime, RuntimeName, captured_fd, captured_stderr, default_threads, select_runtime
from .sysinfo import litert_gpu_missing_flags
from .trial import check_quantization, trial
from ..contract.limits import limits

GPU_DELEGATE_ENV = "KERAS_EDGE_GPU_DELEGATE"
TFLITE_IDENTIFIER = b"TFL3"


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


def check_tflite_file(path: str | os.PathLike) -> Path:
    """Refuse early, with one clear line, anything that is not a readable TFLite flatbuffer."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: no such file", "give a .tflite file or a bundle directory")
    if p.is_dir():
        raise ModelError(f"{p} is a directory without manifest.json", "give a .tflite file or a bundle directory")
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except PermissionError:
        raise ModelError(f"{p}: permission denied", "check the file's permissions") from None
    if len(head) < 8 or head[4:8] != TFLITE_IDENTIFIER:
        what = "is empty" if not head else "is not a TFLite model (no TFL3 identifier)"
        raise ModelError(f"{p} {what}", "give a .tflite file written by a TFLite/LiteRT converter")
    return p


def check_flatbuffer_bounds(path: Path) -> None:
    """Refuse a truncated model before a runtime without a flatbuffer verifier (tflite_runtime) crashes on it.

    Walks the Model table's ``subgraphs`` and ``buffers`` vectors and every buffer's data, checking
    that each lies inside the file. LiteRT verifies the whole flatbuffer itself.
    """
    data = path.read_bytes()
    n = len(data)

    def u32(at: int) -> int:
        if at < 0 or at + 4 > n:
            raise ValueError
        return int.from_bytes(data[at:at + 4], "little")

    def table_field(table: int, index: int) -> int | None:
        vt = table - int.from_bytes(data[table:table + 4], "little", signed=True)
        if vt < 0 or vt + 4 > n:
            raise ValueError
        vt_size = int.from_bytes(data[vt:vt + 2], "little")
        if 4 + 2 * index + 2 > vt_size or vt + vt_size > n:
            return None
        off = int.from_bytes(data[vt + 4 + 2 * index:vt + 6 + 2 * index], "little")
        return table + off if off else None

    def vector(table: int, index: int, elem: int) -> tuple[int, int]:
        at = table_field(table, index)
        if at is None:
            return 0, 0
        start = at + u32(at)
        length = u32(start)
        if start + 4 + length * elem > n:
            raise ValueError
        return start + 4, length

    try:
        root = u32(0)
        u32(root)
        vector(root, 2, 4)  # subgraphs
        start, count = vector(root, 4, 4)  # buffers
        for k in range(count):
            at = start + 4 * k
            buf = at + u32(at)
            vector(buf, 0, 1)  # inline data
            off_at, size_at = table_field(buf, 1), table_field(buf, 2)
            if off_at is not None and size_at is not None:
                off, size = (int.from_bytes(data[a:a + 8], "little") for a in (off_at, size_at))
                if off > 1 and off + size > n:
                    raise ValueError
    except ValueError:
        raise ModelError(f"{path} is not a valid TFLite model (it is truncated or corrupt: data past the end of the file)",
                         "the file is corrupt or truncated; copy it again or reconvert it") from None


def tensor_specs(details: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(name=d["name"], shape=tuple(int(s) for s in d["shape"]), dtype=np.dtype(d["dtype"]).name,
                            scale=float(d["quantization"][0]), zero_point=int(d["quantization"][1]))
                 for d in details)


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
    engine = _load_cpu(path, rt, options)
    engine.init_ms = (time.perf_counter_ns() - t0) / 1e6
    engine.notes[:0] = notes
    engine.adapter = seen.get("adapter")
    engine.gpu_info = seen.get("info", {})
    return engine


def _attempt(fn: Callable[[], Any]) -> tuple[Any, Exception | None, str]:
    """Call ``fn`` with native stderr captured: (result, exception or None, what native code logged)."""
    result, err = None, None
    with captured_stderr() as native:
        try:
            result = fn()
        except Exception as e:  # callers turn any failure into one user-facing line
            err = e.with_traceback(None)
        if err is not None:
            gc.collect()  # failed native objects log their teardown; let that land in the capture
    return result, err, native[0] if native else ""


def _interpreter(path: Path, rt: Runtime, options: EngineOptions, delegates: list | None = None):
    kw: dict[str, Any] = {"model_path": str(path), "num_threads": options.num_threads}
    if delegates:
        kw["experimental_delegates"] = delegates

    def build(**more: Any):
        it = rt.interpreter(**{**kw, **more})
        check_quantization(it, path)   # values the flatbuffer verifier lets through and XNNPACK crashes on
        _resize_inputs(it, options)
        it.allocate_tensors()
        it.get_output_details()   # names decoded here, inside the attempt: a damaged name is one clear error
        return it

    if options.trial and not delegates:
        trial(lambda: build(num_threads=1), path, limits().max_trial_seconds)
    it, err, native = _attempt(build)
    if isinstance(err, (ModelError, ConfigError)):
        raise err
    if isinstance(err, UnicodeDecodeError):
        raise ModelError(f"{path} names a tensor with bytes that are not UTF-8 text",
                         "the file is damaged or was not written by a TFLite converter; copy it again or reconvert it")
    if isinstance(err, ValueError) and ("Flatbuffer" in str(err) or "Could not open" in str(err)):
        raise ModelError(f"{path} is not a valid TFLite model ({str(err).strip().splitlines()[0]})",
                         "the file is corrupt or truncated; copy it again or reconvert it")
    if err is not None:
        raise ModelError(f"{path} cannot be prepared by {rt.label}: {_first_error(str(err), native)}",
                         "the model may use ops this runtime lacks (Flex/custom ops); reconvert with builtin ops")
    return it


def _first_error(text: str, native: str) -> str:
    lines = [ln.strip() for ln in (text + "\n" + native).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR" in ln or "rror:" in ln or "not supported" in ln or "unresolved" in ln.lower():
            return ln[:200]
    return lines[0][:200] if lines else "unknown error"


def _resize_inputs(it: Any, options: EngineOptions) -> None:
    """Give dynamic dimensions a size before allocation (batch → 1, others from the manifest/option)."""
    for i, d in enumerate(it.get_input_details()):
        sig = [int(s) for s in d.get("shape_signature", d["shape"])]
        want = options.input_shapes[i] if i < len(options.input_shapes) else None
        if want is not None and len(want) != len(sig):
            raise ModelError(f"input {i} ({d['name']}) has rank {len(sig)} but shape {list(want)} was given",
                             f"give {len(sig)} dimensions")
        shape = []
        for k, s in enumerate(sig):
            if s >= 0:
                if want is not None and want[k] not in (-1, s):
                    raise ModelError(f"input {i} ({d['name']}) has a fixed shape {sig}; cannot resize it to {list(want)}",
                                     "give no input shape for this model")
                shape.append(s)
            elif want is not None and want[k] > 0:
                shape.append(int(want[k]))
            elif k == 0:
                shape.append(1)
            else:
                raise ConfigError("input_shape", f"is needed: input {i} ({d['name']}) has a dynamic shape {sig}",
                                  "give H,W,C")
        if shape != [int(s) for s in d["shape"]]:
            it.resize_tensor_input(d["index"], shape, strict=True)


def _interpreter_engine(path: Path, rt: Runtime, it: Any, backend: Backend, threads: int, keep: Any = None) -> Engine:
    ins, outs = it.get_input_details(), it.get_output_details()
    in_idx = [d["index"] for d in ins]
    out_idx = [d["index"] for d in outs]
    set_tensor, get_tensor = it.set_tensor, it.get_tensor
    return Engine(path=path, runtime=rt, backend=backend, threads=threads,
                  inputs=tensor_specs(ins), outputs=tensor_specs(outs), invoke=it.invoke,
                  set_input=lambda i, a: set_tensor(in_idx[i], a), output=lambda i: get_tensor(out_idx[i]),
                  _keep=(it, keep))


def _load_cpu(path: Path, rt: Runtime, options: EngineOptions) -> Engine:
    it = _interpreter(path, rt, options)
    backend = Backend.CPU_XNNPACK if _has_delegate_node(it) else Backend.CPU
    engine = _interpreter_engine(path, rt, it, backend, options.num_threads)
    if backend is Backend.CPU:
        engine.notes.append("XNNPACK took no part of this model; builtin CPU kernels run it")
    return engine


def _has_delegate_node(it: Any) -> bool:
    try:
        return any(op.get("op_name") == "DELEGATE" for op in it._get_ops_details())
    except Exception:  # private API: absent in some runtime versions; XNNPACK is their default anyway
        return True


def _load_gpu(path: Path, rt: Runtime, options: EngineOptions, seen: dict[str, Any]) -> Engine:
    library = options.gpu_delegate or os.environ.get(GPU_DELEGATE_ENV)
    if library:
        return _load_gpu_delegate(path, rt, options, library)
    if rt.has_gpu_accelerator:
        missing = litert_gpu_missing_flags()
        if missing:
            raise RuntimeUnavailable(f"{rt.label}'s GPU accelerator needs CPU features this CPU lacks "
                                     f"({', '.join(missing)}) and would crash the process with SIGILL",
                                     "run on the CPU (XNNPACK), or give a GPU delegate built for this board")
        return _load_litert_gpu_checked(path, rt, options, seen)
    raise RuntimeUnavailable(f"{rt.label} has no built-in GPU accelerator and no GPU delegate library was given",
                             f"give a GPU delegate library path, or set {GPU_DELEGATE_ENV}")


def _load_gpu_delegate(path: Path, rt: Runtime, options: EngineOptions, library: str) -> Engine:
    # try the library with ctypes first: a failed load_delegate leaves a half-built object that
    # complains on stderr when it is collected
    _, err, native = _attempt(lambda: ctypes.CDLL(library))
    if err is None:
        delegate, err, native = _attempt(lambda: rt.load_delegate(library))
    if err is not None:
        raise RuntimeUnavailable(f"GPU delegate {library} did not load ({_first_error(str(err), native)})",
                                 "check the path and that the board's GPU driver is installed")
    try:
        it = _interpreter(path, rt, options, [delegate])
    except ModelError as e:
        raise RuntimeUnavailable(f"GPU delegate {library} could not prepare the model ({e.what})") from None
    if not _has_delegate_node(it):
        raise RuntimeUnavailable(f"GPU delegate {library} took no part of the model")
    engine = _interpreter_engine(path, rt, it, Backend.GPU_DELEGATE, options.num_threads, keep=delegate)
    _trial_run(engine)
    return engine


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
    specs = _interpreter(path, rt, EngineOptions(threads=1, input_shapes=options.input_shapes))
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
        compiled, err, native = _attempt(compile_)
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
    _trial_run(engine)
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
    return _first_error(text, native)


def _trial_run(engine: Engine) -> None:
    """The GPU counts only once the model has actually run on it."""
    with captured_fd(1):
        _, err, native = _attempt(lambda: engine.run([np.zeros(t.shape, np.dtype(t.dtype)) for t in engine.inputs]))
    if err is not None:
        raise RuntimeUnavailable(f"the model did not run on {engine.backend} ({_first_error(str(err), native)})")


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
