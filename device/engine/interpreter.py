"""The runtime's interpreter, built and checked: the CPU path (XNNPACK by default) and the base every
interpreter-backed backend shares. Failures become one line (native logs captured, first error kept)."""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..contract.errors import ConfigError, ModelError, RuntimeUnavailable
from ..contract.limits import limits
from .runtime import Runtime, captured_fd, captured_stderr
from .trial import check_quantization, trial
from .types import Backend, Engine, EngineOptions, tensor_specs

TFLITE_IDENTIFIER = b"TFL3"

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

def attempt(fn: Callable[[], Any]) -> tuple[Any, Exception | None, str]:
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

def interpreter(path: Path, rt: Runtime, options: EngineOptions, delegates: list | None = None):
    kw: dict[str, Any] = {"model_path": str(path), "num_threads": options.num_threads}
    if delegates:
        kw["experimental_delegates"] = delegates

    def build(**more: Any):
        it = rt.interpreter(**{**kw, **more})
        check_quantization(it, path)   # values the flatbuffer verifier lets through and XNNPACK crashes on
        resize_inputs(it, options)
        it.allocate_tensors()
        it.get_output_details()   # names decoded here, inside the attempt: a damaged name is one clear error
        return it

    if options.trial and not delegates:
        trial(lambda: build(num_threads=1), path, limits().max_trial_seconds)
    it, err, native = attempt(build)
    if isinstance(err, (ModelError, ConfigError)):
        raise err
    if isinstance(err, UnicodeDecodeError):
        raise ModelError(f"{path} names a tensor with bytes that are not UTF-8 text",
                         "the file is damaged or was not written by a TFLite converter; copy it again or reconvert it")
    if isinstance(err, ValueError) and ("Flatbuffer" in str(err) or "Could not open" in str(err)):
        raise ModelError(f"{path} is not a valid TFLite model ({str(err).strip().splitlines()[0]})",
                         "the file is corrupt or truncated; copy it again or reconvert it")
    if err is not None:
        raise ModelError(f"{path} cannot be prepared by {rt.label}: {first_error(str(err), native)}",
                         "the model may use ops this runtime lacks (Flex/custom ops); reconvert with builtin ops")
    return it

def first_error(text: str, native: str) -> str:
    lines = [ln.strip() for ln in (text + "\n" + native).splitlines() if ln.strip()]
    for ln in lines:
        if "ERROR" in ln or "rror:" in ln or "not supported" in ln or "unresolved" in ln.lower():
            return ln[:200]
    return lines[0][:200] if lines else "unknown error"

def resize_inputs(it: Any, options: EngineOptions) -> None:
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

def interpreter_engine(path: Path, rt: Runtime, it: Any, backend: Backend, threads: int, keep: Any = None) -> Engine:
    ins, outs = it.get_input_details(), it.get_output_details()
    in_idx = [d["index"] for d in ins]
    out_idx = [d["index"] for d in outs]
    set_tensor, get_tensor = it.set_tensor, it.get_tensor
    return Engine(path=path, runtime=rt, backend=backend, threads=threads,
                  inputs=tensor_specs(ins), outputs=tensor_specs(outs), invoke=it.invoke,
                  set_input=lambda i, a: set_tensor(in_idx[i], a), output=lambda i: get_tensor(out_idx[i]),
                  _keep=(it, keep))

def has_delegate_node(it: Any) -> bool:
    try:
        return any(op.get("op_name") == "DELEGATE" for op in it._get_ops_details())
    except Exception:  # private API: absent in some runtime versions; XNNPACK is their default anyway
        return True

def trial_run(engine: Engine) -> None:
    """The GPU counts only once the model has actually run on it."""
    with captured_fd(1):
        _, err, native = attempt(lambda: engine.run([np.zeros(t.shape, np.dtype(t.dtype)) for t in engine.inputs]))
    if err is not None:
        raise RuntimeUnavailable(f"the model did not run on {engine.backend} ({first_error(str(err), native)})")
