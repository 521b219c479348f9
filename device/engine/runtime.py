"""Choosing the interpreter runtime at run time, and which one ran.

Preference order: ``ai_edge_litert`` (LiteRT, current), ``tflite_runtime`` (legacy, built against
numpy 1.x), then ``tensorflow.lite`` when TensorFlow happens to be installed (workstations only).
``KERAS_EDGE_RUNTIME`` forces one. A runtime counts as usable only after it has really built an
interpreter for a tiny model: ``tflite_runtime`` imports fine under numpy 2 and fails only then.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Iterator

import numpy as np

from ..contract.errors import RuntimeUnavailable

RUNTIME_ENV = "KERAS_EDGE_RUNTIME"


class RuntimeName(StrEnum):
    LITERT = "ai_edge_litert"
    TFLITE_RUNTIME = "tflite_runtime"
    TENSORFLOW = "tensorflow.lite"


@dataclass(frozen=True)
class Runtime:
    """An importable interpreter runtime: its Interpreter class and ``load_delegate``."""

    name: RuntimeName
    version: str
    interpreter: Callable[..., Any]
    load_delegate: Callable[..., Any]

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def has_gpu_accelerator(self) -> bool:
        """LiteRT ships its own GPU accelerator (CompiledModel); the others need a delegate library."""
        return self.name is RuntimeName.LITERT


@dataclass(frozen=True)
class Probe:
    """What trying one runtime found: its version when usable, else why not (one line) and the fix."""

    name: RuntimeName
    installed: bool
    version: str | None = None
    error: str | None = None
    fix: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and self.installed

    def to_dict(self) -> dict[str, Any]:
        return {"name": str(self.name), "installed": self.installed, "usable": self.usable,
                "version": self.version, "error": self.error, "fix": self.fix}


@contextlib.contextmanager
def captured_stderr() -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 (LiteRT logs there); yields [text]."""
    with captured_fd(2) as out:
        yield out


@contextlib.contextmanager
def captured_fd(fd: int) -> Iterator[list[str]]:
    """Capture what native code writes to ``fd``; yields [text] (filled on exit).

    LiteRT's GPU accelerator writes some of its log lines to fd 1, where they would corrupt ``--json``.
    """
    out: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            _flush_c_stdio()  # native code may write through a buffered C stdio stream; land it in the capture
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", "replace"))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """This process's C library (None where there is no handle to it)."""
    try:
        return ctypes.CDLL(None)
    except OSError:
        return None


def _flush_c_stdio() -> None:
    try:
        _libc().fflush(None)
    except AttributeError:  # no C library handle on this platform
        pass


def _import_litert() -> Runtime:
    from ai_edge_litert import interpreter as m

    return Runtime(RuntimeName.LITERT, _dist_version("ai-edge-litert", "ai_edge_litert"), m.Interpreter, m.load_delegate)


def _import_tflite_runtime() -> Runtime:
    from tflite_runtime import interpreter as m

    return Runtime(RuntimeName.TFLITE_RUNTIME, _dist_version("tflite-runtime", "tflite_runtime"),
                   m.Interpreter, m.load_delegate)


def _import_tensorflow() -> Runtime:
    # only reached when neither board runtime is usable and TensorFlow is installed (a workstation)
    import tensorflow as tf

    return Runtime(RuntimeName.TENSORFLOW, tf.__version__, tf.lite.Interpreter, tf.lite.experimental.load_delegate)


# preference order: the first usable one runs
RUNTIMES: dict[RuntimeName, tuple[str, Callable[[], Runtime]]] = {
    RuntimeName.LITERT: ("ai_edge_litert", _import_litert),
    RuntimeName.TFLITE_RUNTIME: ("tflite_runtime", _import_tflite_runtime),
    RuntimeName.TENSORFLOW: ("tensorflow", _import_tensorflow),
}


def _dist_version(dist: str, module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return str(getattr(importlib.import_module(module), "__version__", "unknown"))


def _numpy_major() -> int:
    return int(np.__version__.split(".")[0])


def _diagnose(name: RuntimeName, version: str | None, err: BaseException, native: str) -> tuple[str, str]:
    """One line saying why a runtime failed, and what to do about it."""
    text = f"{type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err).strip() else ''}"
    numpy_abi = "_ARRAY_API" in native or "compiled using NumPy 1.x" in native or "_ARRAY_API" in str(err)
    if name is RuntimeName.TFLITE_RUNTIME and (numpy_abi or _numpy_major() >= 2):
        return (f"tflite_runtime {version or ''} was built against numpy 1.x and cannot run under numpy "
                f"{np.__version__}".replace("  ", " "),
                "install numpy<2 next to it (pip install 'keras-edge[device-legacy]'), "
                "or use LiteRT instead (pip install ai-edge-litert)")
    return text, f"reinstall it (pip install {name.split('.')[0].replace('_', '-')})"


def probe(name: RuntimeName) -> Probe:
    """Import one runtime and build and invoke an interpreter on a tiny model, capturing native noise."""
    module, loader = RUNTIMES[name]
    if importlib.util.find_spec(module) is None:
        return Probe(name, installed=False, error="not installed")
    version = None
    with captured_stderr() as native:
        try:
            rt = loader()
            version = rt.version
            if name is not RuntimeName.LITERT:  # older runtimes can import yet fail to run (numpy ABI)
                _smoke(rt)
        except Exception as e:  # any failure here means "not usable"; the reason is reported
            err: BaseException | None = e
        else:
            err = None
    if err is None:
        return Probe(name, installed=True, version=version)
    what, fix = _diagnose(name, version, err, native[0] if native else "")
    return Probe(name, installed=True, version=version, error=what, fix=fix)


def _smoke(rt: Runtime) -> None:
    from .probe_model import PROBE_TFLITE

    it = rt.interpreter(model_content=PROBE_TFLITE, num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], np.float32))
    it.invoke()


_SELECTED: dict[str | None, Runtime] = {}


def select_runtime(name: str | None = None) -> Runtime:
    """The runtime to use: ``name`` (or ``$KERAS_EDGE_RUNTIME``) if given, else the first usable one."""
    name = name or os.environ.get(RUNTIME_ENV) or None
    if name in _SELECTED:
        return _SELECTED[name]
    if name is not None:
        try:
            wanted = [RuntimeName(name)]
        except ValueError:
            raise RuntimeUnavailable(f"unknown runtime {name!r}",
                                     f"use one of: {', '.join(r.value for r in RuntimeName)}") from None
    else:
        wanted = list(RUNTIMES)
    probes = []
    for rname in wanted:
        p = probe(rname)
        if p.usable:
            _SELECTED[name] = RUNTIMES[rname][1]()
            return _SELECTED[name]
        probes.append(p)
    usable_fix = next((p for p in probes if p.installed), None)
    if usable_fix is not None:
        raise RuntimeUnavailable(f"{usable_fix.name} cannot run: {usable_fix.error}", usable_fix.fix)
    raise RuntimeUnavailable("no TFLite runtime is installed (tried " + ", ".join(p.name for p in probes) + ")",
                             "pip install 'keras-edge[device]' (LiteRT)")


def probe_all() -> list[Probe]:
    """Every known runtime, tried (for ``doctor``); TensorFlow only if it is installed."""
    return [probe(name) for name in RUNTIMES]


def default_threads() -> int:
    """The number of cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
FRAME_MEMORY_BYTES = 32 << 20   # a 4K BGR frame (25 MB) fits; glibc's own ceiling for its adaptive threshold
RELEASE_EVERY_S = 5.0           # how often a long run hands memory that stayed free back (release_free_memory)
_frame_memory: bool | None = None


def keep_frame_memory() -> bool:
    """Let glibc's malloc keep freed frame-sized blocks for reuse instead of handing them back to the kernel.

    Every decoded 1080p frame is a fresh 6 MB block. With glibc's defaults, blocks that size freed on the
    pipeline's worker threads go back to the kernel (``munmap``, or a heap trimmed on ``free``) and the next
    frame faults 1,500 zeroed pages in again: measured here, 1,000-1,800 page faults and 2-4 ms of kernel
    time per image on top of an 8 ms decode, 40% of the run's CPU on a 1080p folder. Raising the mmap and
    trim thresholds to :data:`FRAME_MEMORY_BYTES` keeps those blocks in the heap: no faults, and the same
    pipelined run does 1.3-1.4x the images/s (``python -m benchmarks.throughput``, its allocator section). The cost is up to that much freed memory
    kept per malloc arena; a long run bounds it with :func:`release_free_memory` every
    :data:`RELEASE_EVERY_S` seconds. Process-wide and once; returns whether it took effect
    (False where the C library has no ``mallopt``: musl, macOS; or with ``KERAS_EDGE_FRAME_MEMORY=0`` in the
    environment, for a board short of memory).
    """
    global _frame_memory
    if _frame_memory is None:
        if os.environ.get("KERAS_EDGE_FRAME_MEMORY", "1").strip() == "0":
            _frame_memory = False
            return False
        mallopt = getattr(_libc(), "mallopt", None)
        _frame_memory = mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, FRAME_MEMORY_BYTES)) and bool(
            mallopt(_M_TRIM_THRESHOLD, FRAME_MEMORY_BYTES))
    return _frame_memory


def release_free_memory() -> float:
    """Hand the pages of free heap blocks back to the kernel (glibc ``malloc_trim``); returns the ms it took.

    With :func:`keep_frame_memory` freed frames stay in the heap, and over tens of thousands of inputs the
    heap fragments: the soak grew 2.4 MB in 50,000 inputs, in 1 MB steps, while the memory in use stayed at
    12.6 MB (``mallinfo2``). Trimming every few seconds keeps RSS flat for the cost of faulting in one frame
    again (a trim took at most 0.33 ms here). Does nothing unless keep_frame_memory is in effect.
    """
    trim = getattr(_libc(), "malloc_trim", None)
    if not _frame_memory or trim is None:
        return 0.0
    t0 = time.perf_counter()
    trim(0)
    return (time.perf_counter() - t0) * 1e3
