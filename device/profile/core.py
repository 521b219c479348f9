"""``keras-edge profile``: a per-op table of a model on the machine that runs it, with only the device dependencies.

How the per-op time is measured (LiteRT's Python API has no profiler readout):

1. The whole model is loaded as ``run`` loads it (XNNPACK, the given threads) and its nodes are read:
   which XNNPACK partition took each op, and why the others were left to builtin kernels (:mod:`.graph`).
2. Each op is cut out of the flatbuffer as a subgraph of its own, appended to the model together with two
   tiny probes (the fixed cost of one ``invoke`` with and without XNNPACK) (:mod:`.cut`). One interpreter
   loads it all, so the ops run on the kernels the whole model uses and share its XNNPACK delegate and
   thread pool; each op is fed the activations the whole model really produced (one run with every
   intermediate tensor kept).
3. The whole model, every op and the probes are timed side by side in passes that replay an inference
   (:mod:`.timing`). An op's time is its median less the probe's; ops on constants only are folded at load
   and cost nothing per inference.

The check: the ops' times plus one invoke's fixed cost should equal the whole model's time measured in the
same passes. ``Profile.pass_ratio`` compares them pass by pass (medians over passes, with a bootstrap 95%
interval) and is the check ``make bench``'s board family holds to 15%; ``Profile.sum_ratio`` (the sum of the
ops' medians against the whole's) agrees with it on a quiet machine and undercounts a busy one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from ..contract.checks import positive_int
from ..contract.errors import ConfigError, RuntimeUnavailable
from ..engine.core import EngineOptions, check_tflite_file, sample_inputs, tensor_specs
from ..engine.interpreter import attempt as _attempt, first_error as _first_error, resize_inputs as _resize_inputs
from ..engine.probe_model import PROBE_TFLITE
from ..engine.runtime import Runtime, default_threads, select_runtime
from ..engine.sysinfo import environment
from ..engine.target import open_target
from .graph import OpInfo, read_ops
from .timing import Timed, replay

FORMAT = "keras-edge-profile/1"


@dataclass(frozen=True)
class ProfileConfig:
    target: str                      # a bundle directory or a .tflite file
    variant: str | None = None       # a bundle's variant (None: its default)
    threads: int | None = None       # None: every core
    passes: int = 20                 # timed passes (each: the whole model, then every op once, in order)
    min_seconds: float = 2.0         # keep timing passes at least this long
    times: bool = True               # False: the op table and XNNPACK column only

    def __post_init__(self) -> None:
        if self.threads is not None:
            positive_int("threads", self.threads, "1 or more threads")
        positive_int("passes", self.passes, "3 or more passes", minimum=3)
        if not self.min_seconds >= 0:
            raise ConfigError("min_seconds", f"{self.min_seconds} is negative", "give 0 or more seconds")


@dataclass(frozen=True)
class OpRow:
    """One op of the profile: what it is, its time per inference (ms) and its share of the ops' total."""

    op: OpInfo
    ms: float | None = None
    lo_ms: float | None = None
    hi_ms: float | None = None
    share: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**self.op.to_dict(), "ms": _r(self.ms), "lo_ms": _r(self.lo_ms), "hi_ms": _r(self.hi_ms),
                "share": _r(self.share), "note": self.note}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OpRow":
        return cls(OpInfo.from_dict(d), d.get("ms"), d.get("lo_ms"), d.get("hi_ms"), d.get("share"), str(d.get("note") or ""))


@dataclass(frozen=True)
class Profile:
    """A model's per-op profile on one machine, and the whole-model time it is checked against."""

    target: str
    model: str                          # the .tflite file's name
    variant: str | None
    runtime: str
    threads: int
    rows: tuple[OpRow, ...]
    whole_ms: float | None = None       # the whole model's median, measured in the same passes
    whole_lo_ms: float | None = None
    whole_hi_ms: float | None = None
    overhead_ms: float | None = None    # one invoke's fixed cost (the probe), in the whole model once
    passes: int = 0
    pass_ratio: float | None = None     # median over passes of (ops + overhead) / median of the whole
    pass_ratio_ci: tuple[float, float] | None = None   # its 95% interval, passes resampled
    environment: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    format: str = FORMAT

    @property
    def timed(self) -> bool:
        return self.whole_ms is not None

    @property
    def ops_ms(self) -> float | None:
        return sum(r.ms or 0.0 for r in self.rows) if self.timed else None

    @property
    def sum_ms(self) -> float | None:
        """The ops' times plus one invoke's fixed cost: what the whole model should take."""
        return self.ops_ms + (self.overhead_ms or 0.0) if self.timed else None

    @property
    def sum_ratio(self) -> float | None:
        return self.sum_ms / self.whole_ms if self.timed and self.whole_ms else None

    @property
    def xnnpack_ops(self) -> int:
        return sum(r.op.xnnpack for r in self.rows)

    @property
    def xnnpack_share(self) -> float | None:
        """The share of the ops' time spent in ops XNNPACK runs."""
        if not self.timed or not self.ops_ms:
            return None
        return sum(r.ms or 0.0 for r in self.rows if r.op.xnnpack) / self.ops_ms

    def top(self, n: int) -> list[OpRow]:
        return sorted(self.rows, key=lambda r: -(r.ms or 0.0))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "target": self.target, "model": self.model, "variant": self.variant,
                "runtime": self.runtime, "threads": self.threads, "passes": self.passes,
                "whole_ms": _r(self.whole_ms), "whole_lo_ms": _r(self.whole_lo_ms), "whole_hi_ms": _r(self.whole_hi_ms),
                "overhead_ms": _r(self.overhead_ms), "ops_ms": _r(self.ops_ms), "sum_ms": _r(self.sum_ms),
                "sum_ratio": _r(self.sum_ratio), "pass_ratio": _r(self.pass_ratio),
                "pass_ratio_ci": [_r(x) for x in self.pass_ratio_ci] if self.pass_ratio_ci else None, "xnnpack_ops": self.xnnpack_ops, "ops": len(self.rows),
                "xnnpack_share": _r(self.xnnpack_share), "environment": self.environment, "notes": list(self.notes),
                "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Profile":
        """Rebuild a profile from its JSON (a board's ``profile --json``); unknown formats are refused."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} profile")
        return cls(str(d["target"]), str(d["model"]), d.get("variant"), str(d["runtime"]), int(d["threads"]),
                   tuple(OpRow.from_dict(r) for r in d["rows"]), d.get("whole_ms"), d.get("whole_lo_ms"),
                   d.get("whole_hi_ms"), d.get("overhead_ms"), int(d.get("passes") or 0),
                   d.get("pass_ratio"), tuple(d["pass_ratio_ci"]) if d.get("pass_ratio_ci") else None,
                   dict(d.get("environment") or {}), tuple(d.get("notes") or ()))


def _r(x: float | None, digits: int = 5) -> float | None:
    return None if x is None else round(float(x), digits)


def profile(cfg: ProfileConfig, progress: Callable[[str], None] = lambda s: None) -> Profile:
    """Profile ``cfg.target``: every op, XNNPACK or not and why, and (with ``times``) its measured time."""
    target = open_target(cfg.target, cfg.variant)
    path = check_tflite_file(target.model)
    rt = select_runtime()
    threads = cfg.threads or default_threads()
    options = EngineOptions(threads=threads, input_shapes=target.input_shapes)
    whole = build(rt, options, path=path)
    ops = read_ops(whole)
    env = environment(runtime=rt.label, backend="cpu-xnnpack" if any(o.xnnpack for o in ops) else "cpu")
    base = dict(target=str(cfg.target), model=path.name, variant=target.variant.name if target.variant else None,
                runtime=rt.label, threads=threads, environment=env)
    if not cfg.times:
        return Profile(rows=tuple(OpRow(o) for o in ops), **base)
    try:
        from .cut import Cutter

        cutter = Cutter(path.read_bytes())
    except RuntimeUnavailable as e:
        return Profile(rows=tuple(OpRow(o) for o in ops), notes=(f"no per-op times: {e.what} ({e.fix})",), **base)
    progress(f"cutting {len(ops)} ops out of {path.name}")
    const_ops = {o.index for o in ops if not o.activations}   # on constants only: TFLite and XNNPACK fold it at load
    combined = cutter.combined([o.index for o in ops if o.index not in const_ops],
                               {t.index: t.shape for o in ops for t in (*o.inputs, *o.outputs)})
    notes = [f"op {o.index} ({o.op}) calls a subgraph and was not timed on its own" for o in ops
             if o.index not in const_ops and o.index not in combined.ops]
    contenders, keep = _contenders(rt, options, path, ops, combined)
    progress(f"timing the whole model and {len(contenders) - 3} ops side by side, in passes that replay an "
             f"inference ({cfg.passes}+ passes, {cfg.min_seconds:g}+ s)")
    run = replay(contenders, cfg.passes, cfg.min_seconds)
    del keep
    timed = run.timed()
    ovh = {True: timed["probe-xnnpack"].ms, False: timed["probe-builtin"].ms}
    first = ovh[any(o.xnnpack for o in ops)]
    check, check_ci = _check(run, {o.index: ovh[o.xnnpack] for o in ops if o.index in timed}, first)
    per_op: dict[int, Timed] = {o.index: timed[o.index].minus(ovh[o.xnnpack]) for o in ops if o.index in timed}
    total = sum(t.ms for t in per_op.values()) or 1.0
    rows = []
    for o in ops:
        t = per_op.get(o.index)
        if o.index in const_ops:
            rows.append(OpRow(o, 0.0, share=0.0, note="constant inputs: folded at load"))
        else:
            rows.append(OpRow(o) if t is None else OpRow(o, t.ms, t.lo_ms, t.hi_ms, t.ms / total))
    w = timed["whole"]
    return Profile(rows=tuple(rows), whole_ms=w.ms, whole_lo_ms=w.lo_ms, whole_hi_ms=w.hi_ms,
                   overhead_ms=first, passes=w.passes, pass_ratio=check, pass_ratio_ci=check_ci, notes=tuple(notes), **base)


WAKE_CALLS = 4   # untimed wake-ups before each timed op (see _contenders)


def _contenders(rt: Runtime, options: EngineOptions, path: Path, ops: list[OpInfo], combined: Any) -> tuple[dict, Any]:
    """(prepare, call) for the whole model, every op and the probes, all in one interpreter of ``combined``."""
    values = activations(rt, options, path, ops)
    it = build(rt, options, content=combined.model, resize=True)
    w = it._interpreter
    for k in range(1, w.NumSubgraphs()):
        w.AllocateTensors(k)
    # one interpreter: the whole model (subgraph 0), every op and the probes share XNNPACK's thread pool
    from .cut import WAKE_SHAPE

    wake_once = _fed(w, combined.wake, [(k, np.ones(WAKE_SHAPE, np.float32)) for k in (0, 1)])[1]

    def wake() -> None:
        # One wake call leaves the pool half awake: at 2 threads EfficientNetB0's ops summed to 125% of the whole
        # with one, 111% with two, 108% with four calls (MobileNetV2 113% → 105%), where 1 thread stays at ~101%
        for _ in range(WAKE_CALLS):
            wake_once()
    contenders: dict[Any, Any] = {"whole": _fed(w, 0, [(d["index"], x) for d, x in zip(it.get_input_details(), _inputs(it))],
                                                wake=wake)}
    for o in ops:
        g = combined.ops.get(o.index)
        if g is not None:
            outs = [(k, np.zeros(t.shape, t.dtype)) for k, t in zip(g.outputs, o.outputs)]
            contenders[o.index] = _fed(w, g.subgraph, [(k, values[t]) for k, t in g.feeds], outs, wake)
    one = lambda dtype: [(0, np.ones(1, dtype)), (1, np.ones(1, dtype))]  # noqa: E731
    contenders["probe-xnnpack"] = _fed(w, combined.probe_xnnpack, one(np.float32), wake=wake)
    contenders["probe-builtin"] = _fed(w, combined.probe_builtin, one(np.int32), wake=wake)
    return contenders, it


def _check(run: Any, less: dict[int, float], first: float) -> tuple[float, tuple[float, float]]:
    """The ops plus one invoke's overhead over the whole, pass by pass (medians), and its bootstrap 95% interval."""
    sums = run.pass_sums(less) + first
    whole = run.column("whole")
    boot = np.random.default_rng(0).integers(0, len(sums), (400, len(sums)))   # resampled passes
    ratios = np.median(sums[boot], axis=1) / np.median(whole[boot], axis=1)
    return float(np.median(sums) / np.median(whole)), (float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5)))


def model_ops(model: str | Path | bytes, threads: int = 1) -> list[OpInfo]:
    """A .tflite file's (or bytes') ops as :func:`profile` reads them (XNNPACK's claim included), nothing timed."""
    options = EngineOptions(threads=threads)
    if isinstance(model, (bytes, bytearray)):
        return read_ops(build(select_runtime(), options, content=bytes(model)))
    return read_ops(build(select_runtime(), options, path=check_tflite_file(model)))


def build(rt: Runtime, options: EngineOptions, *, path: Path | None = None, content: bytes | None = None,
          xnnpack: bool = True, preserve: bool = False, resize: bool = False) -> Any:
    """An allocated interpreter for a file or bytes, with XNNPACK (the runtime's default) or builtin kernels only."""
    kw: dict[str, Any] = {"num_threads": options.num_threads}
    kw.update({"model_path": str(path)} if path is not None else {"model_content": content})
    if not xnnpack or preserve:
        kw["experimental_op_resolver_type"] = _resolvers(rt).BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if preserve:
        kw["experimental_preserve_all_tensors"] = True

    def make():
        it = rt.interpreter(**kw)
        if path is not None or resize:
            _resize_inputs(it, options)
        it.allocate_tensors()
        return it

    it, err, native = _attempt(make)
    if err is not None:
        from ..contract.errors import ModelError

        raise ModelError(f"{path.name if path else 'an op of the model'} cannot be prepared by {rt.label}: "
                         f"{_first_error(str(err), native)}", "profile a model that `keras-edge run` can run")
    return it


def _resolvers(rt: Runtime) -> Any:
    return sys.modules[rt.interpreter.__module__].OpResolverType


def activations(rt: Runtime, options: EngineOptions, path: Path, ops: list[OpInfo]) -> dict[int, np.ndarray]:
    """Every op's activation inputs as the whole model computes them for seeded sample inputs."""
    ref = build(rt, EngineOptions(threads=1, input_shapes=options.input_shapes), path=path, xnnpack=False, preserve=True)
    for d, x in zip(ref.get_input_details(), _inputs(ref)):
        ref.set_tensor(d["index"], x)
    ref.invoke()
    wanted = {t.index for o in ops for t in o.activations}
    return {i: np.array(ref.get_tensor(i)) for i in wanted}


def _inputs(it: Any) -> list[np.ndarray]:
    return sample_inputs(SimpleNamespace(inputs=tensor_specs(it.get_input_details())))


HOT_BYTES = 64 << 20   # inputs and outputs up to this size are rewritten before each timed call


def _fed(w: Any, subgraph: int, feeds: list[tuple[int, np.ndarray]], outputs: list[tuple[int, np.ndarray]] = (),
         wake: Callable[[], object] | None = None) -> tuple[Callable[[], None], Callable[[], object]]:
    """(write the inputs, invoke subgraph) on the interpreter wrapper ``w``. The writing is untimed: it leaves the
    inputs hot in cache, as the op before would have, and the output buffers too, as the model's arena (which
    reuses a few buffers for every op) would have them; each op's own buffers were last touched a pass ago.
    Then ``wake`` runs a small op on every thread (a few times: one call leaves the pool half awake), so the pool
    is awake as the op before would leave it."""
    set_tensor, invoke = w.SetTensor, w.Invoke
    arrays = [(k, np.array(a).copy(order="C")) for k, a in (*feeds, *outputs)]   # np.array keeps a 0-d input 0-d
    for k, a in arrays:
        set_tensor(k, a, subgraph)
    hot = [(k, a) for k, a in arrays if a.nbytes <= HOT_BYTES]

    def prepare() -> None:
        for k, a in hot:
            set_tensor(k, a, subgraph)
        if wake is not None:
            wake()

    return prepare, lambda: invoke(subgraph)
