"""``keras-edge verify``: every checksum, then ``reference.npz`` through every variant, on this board.

For each variant the reference inputs are quantized with that variant's input parameters, run one
by one, dequantized and compared with the Keras outputs recorded at convert time: the largest
absolute error must stay within ``tolerance.max_abs`` and, for classifiers, top-1 agreement must
reach ``tolerance.min_agreement``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.bundle import Manifest, Task, Variant, VariantStatus, check_variant, gpu_slack, inside, read_labels, read_manifest
from ..engine.core import Engine, EngineOptions, load
from ..contract.errors import BundleError, EdgeError
from ..contract.files import check_arrays
from ..outputs.postprocess import file_outputs
from ..inputs.preprocess import dequantize, quantize


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"            # a mismatch: checksum, missing file, or outputs outside the tolerance
    KNOWN = "known"          # the converter already marked it validation_failed; reported, not counted
    SKIPPED = "skipped"      # conversion failed at convert time: there is no file to check


@dataclass
class VariantCheck:
    variant: str
    verdict: Verdict
    message: str = ""
    max_abs: float | None = None
    agreement: float | None = None
    samples: int = 0
    outputs: list[dict[str, Any]] | None = None   # several outputs: each one's name, max abs error and bound
    backend: str | None = None
    tolerance: dict[str, float] | None = None
    bound: float | None = None          # the max_abs bound applied: the GPU one on a GPU backend
    notes: list[str] = field(default_factory=list)   # the engine's: GPU fallbacks, software adapter
    adapter: dict[str, Any] | None = None             # the GPU adapter (used, or declined by auto)


@dataclass
class VerifyReport:
    bundle: str
    name: str
    runtime: str | None = None
    adapter: dict[str, Any] | None = None                 # the GPU adapter seen, when one was tried
    checks: list[VariantCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # bundle-level: labels, reference

    @property
    def ok(self) -> bool:
        return not self.problems and all(c.verdict is not Verdict.FAIL for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "name": self.name, "ok": self.ok, "runtime": self.runtime,
                "adapter": self.adapter, "problems": self.problems, "variants": [{**asdict(c), "verdict": str(c.verdict)} for c in self.checks]}


def load_reference(bundle_dir: Path, manifest: Manifest) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The reference inputs and Keras outputs (``input_i``/``output_i``), read without pickle."""
    if not manifest.reference:
        raise BundleError(f"bundle {manifest.name!r} records no reference data", "reconvert it with `keras-edge convert`")
    path = inside(bundle_dir, manifest.reference)
    if not path.exists():
        raise BundleError(f"{manifest.reference} is missing from the bundle", "copy the whole bundle again")
    check_arrays(path, manifest.reference, BundleError)   # its inflated size, from the zip headers, before loading
    try:
        with np.load(path, allow_pickle=False) as z:
            ins = [z[f"input_{i}"] for i in range(len(manifest.inputs))]
            outs = [z[f"output_{i}"] for i in range(len(manifest.outputs))]
    except (KeyError, ValueError, OSError, EOFError) as e:
        raise BundleError(f"{manifest.reference} is unreadable or incomplete ({str(e).splitlines()[0][:100]})",
                          "copy the bundle again or reconvert it") from None
    n = {a.shape[0] for a in ins + outs}
    if len(n) != 1:
        raise BundleError(f"{manifest.reference} has arrays of different lengths", "reconvert the bundle")
    return ins, outs


def output_errors(got: list[np.ndarray], want: list[np.ndarray]) -> list[float]:
    """The largest absolute error of each output (``got`` already in the reference's order)."""
    return [float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64)))) if g.size else 0.0
            for g, w in zip(got, want)]


def check_outputs(variant: Variant, got: list[np.ndarray], want: list[np.ndarray], task: Task) -> tuple[float, float | None]:
    """(largest absolute error over all outputs, top-1 agreement of output 0 for classifiers)."""
    max_abs = max(output_errors(got, want))
    agreement = None
    if task is Task.CLASSIFICATION:
        agreement = float(np.mean(np.argmax(got[0].reshape(len(got[0]), -1), 1) ==
                                  np.argmax(want[0].reshape(len(want[0]), -1), 1)))
    return max_abs, agreement


def run_reference(variant: Variant, model: Path, ins: list[np.ndarray], options: EngineOptions,
                  declared: tuple = ()) -> tuple[list[np.ndarray], Engine]:
    """The variant's dequantized outputs for every reference sample, and the engine that ran them."""
    shapes = tuple(tuple(1 if (k == 0 and d < 0) else d for k, d in enumerate(t.shape)) for t in variant.inputs)
    engine = load(model, EngineOptions(**{**asdict(options), "input_shapes": shapes}))
    specs = variant.inputs or engine.inputs
    outs: list[list[np.ndarray]] = [[] for _ in engine.outputs]
    for k in range(ins[0].shape[0]):
        feed = []
        # the file's input i takes manifest input variant.manifest_input(i): the converter orders inputs its own way
        ordered = [ins[variant.manifest_input(i)] for i in range(len(engine.inputs))]
        for x, spec, actual in zip(ordered, specs, engine.inputs):
            if (np.dtype(spec.dtype), spec.scale, spec.zero_point) != (np.dtype(actual.dtype), actual.scale, actual.zero_point):
                raise BundleError(f"variant {variant.name!r}: the manifest says input {spec.name} is {spec.dtype} "
                                  f"(scale {spec.scale:g}, zero point {spec.zero_point}) but the model file says "
                                  f"{actual.dtype} (scale {actual.scale:g}, zero point {actual.zero_point})",
                                  "the manifest and the file disagree; reconvert the bundle")
            feed.append(quantize(x[k:k + 1].astype(np.float32), actual.dtype, actual.scale, actual.zero_point))
        for j, (o, spec) in enumerate(zip(engine.run(feed), engine.outputs)):
            outs[j].append(dequantize(o, spec.scale, spec.zero_point))
    if len(outs) > 1 and declared and len(declared) == len(outs):   # back into the manifest's (Keras's) order
        return [np.concatenate(outs[j]) for j in file_outputs(declared, engine.outputs, variant.output_order)], engine
    return [np.concatenate(o) for o in outs], engine


def verify_variant(bundle_dir: Path, m: Manifest, v: Variant, ref: tuple[list, list] | None,
                   options: EngineOptions) -> VariantCheck:
    if v.status is VariantStatus.CONVERSION_FAILED:
        return VariantCheck(v.name, Verdict.SKIPPED, f"conversion failed at convert time: {v.reason or 'no reason recorded'}")
    try:
        model = check_variant(bundle_dir, v)
        if ref is None:
            return VariantCheck(v.name, Verdict.PASS, "checksum ok (no reference data to run)")
        got, engine = run_reference(v, model, ref[0], options, m.outputs)
        names = [t.name for t in m.outputs] if len(m.outputs) == len(got) else [f"output {i}" for i in range(len(got))]
        bad = [f"{n} is {list(g.shape[1:])}, the reference {list(w.shape[1:])}"
               for n, g, w in zip(names, got, ref[1]) if g.shape != w.shape]
        if bad:
            return VariantCheck(v.name, Verdict.FAIL, f"outputs do not match the reference: {'; '.join(bad)}")
    except EdgeError as e:
        return VariantCheck(v.name, Verdict.FAIL, str(e))
    max_abs, agreement = check_outputs(v, got, ref[1], m.task)
    on_gpu = engine.backend.is_gpu
    check = VariantCheck(v.name, Verdict.PASS, max_abs=max_abs, agreement=agreement, samples=len(ref[0][0]),
                         backend=str(engine.backend), tolerance=asdict(v.tolerance) if v.tolerance else None,
                         notes=list(engine.notes), adapter=engine.describe().get("adapter"))
    tol = v.tolerance
    fails = []
    if tol is None:
        fails.append("the manifest records no tolerance for it")
    else:
        check.bound = tol.max_abs_on(on_gpu, v.mode)
        if on_gpu and tol.gpu_max_abs is None:
            check.notes.append(f"the manifest records no GPU tolerance (older bundle); using max_abs + "
                               f"{gpu_slack(v.mode):g} for the GPU's fp16 arithmetic")
        if len(got) > 1:   # each output against its own bound, named
            check.outputs = []
            for j, (g, w) in enumerate(zip(got, ref[1])):
                err = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))))
                bound = tol.output_bound(j, on_gpu, v.mode)
                name = m.outputs[j].name if j < len(m.outputs) else f"output_{j}"
                check.outputs.append({"name": name, "max_abs": err, "bound": bound, "ok": err <= bound})
                if not err <= bound:
                    fails.append(f"output {name}: max abs error {err:.4g} > {bound:g}" + (" (the GPU tolerance)" if on_gpu else ""))
        elif not max_abs <= check.bound:
            fails.append(f"max abs error {max_abs:.4g} > {check.bound:g}" + (" (the GPU tolerance)" if on_gpu else ""))
        if agreement is not None and agreement < tol.min_agreement:
            fails.append(f"top-1 agreement {agreement:.1%} < {tol.min_agreement:.1%}")
    if fails:
        known = v.status is VariantStatus.VALIDATION_FAILED
        check.verdict = Verdict.KNOWN if known else Verdict.FAIL
        check.message = "; ".join(fails) + (" (already marked validation_failed at convert time)" if known else "")
    else:
        check.message = "checksum ok, outputs within " + ("the GPU tolerance" if on_gpu else "tolerance")
    return check


def verify_bundle(bundle_dir: str | os.PathLike, options: EngineOptions = EngineOptions(),
                  variants: list[str] | None = None) -> VerifyReport:
    """Check every variant (or the named ones); a report whose ``ok`` is False names what mismatched."""
    bundle_dir = Path(bundle_dir)
    m = read_manifest(bundle_dir)
    report = VerifyReport(bundle=str(bundle_dir), name=m.name)
    try:
        read_labels(bundle_dir, m)
    except BundleError as e:
        report.problems.append(str(e))
    ref = None
    try:
        ref = load_reference(bundle_dir, m)
    except BundleError as e:
        report.problems.append(str(e))
    chosen = [m.variant(n) for n in variants] if variants else list(m.variants)
    for v in chosen:
        check = verify_variant(bundle_dir, m, v, ref, options)
        report.adapter = report.adapter or check.adapter
        report.checks.append(check)
    from ..engine.runtime import select_runtime

    report.runtime = select_runtime(options.runtime).label
    return report
