"""`keras-edge convert`: a Keras model → a bundle of validated TFLite variants.

Each variant is converted, loaded in the real interpreter and validated against the Keras model on
held-out samples. One variant failing does not lose the others: each gets a status and a reason.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_edge.calibration.dataset import ARRAY_EXTENSIONS, DataSplit, calibration_sets
from keras_edge.device import bundle as B
from keras_edge.device.errors import ConversionError, DataError, EdgeError, ModelError
from keras_edge.device.preprocess import Interpolation, PreprocessSpec, ResizeMode

from . import evaluate as E
from .model_io import LoadedModel, leading_preprocessing, load_model
from .report import write_report
from .variants import DEFAULT_VARIANTS, VARIANTS, ConvertInputs, IoType, VariantFailed
from .variants import convert as convert_variant

Log = Callable[[str], None]
REFERENCE_SAMPLES = 8
NOISE = 0.05  # latency differences below this fraction do not decide the default
# Floors for verify tolerances, by mode: the board may use other kernels than the workstation.
TOLERANCE_FLOOR = {"fp32": 1e-4, "fp16": 5e-3, "dynamic": 1e-2, "int8": 1e-2, "int16x8": 1e-2}


@dataclass(frozen=True)
class ConvertConfig:
    model: Path
    out: Path
    calib: Path
    eval: Path | None = None
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    io: IoType = IoType.UINT8
    preset: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: ResizeMode = ResizeMode.STRETCH
    interpolation: Interpolation = Interpolation.BILINEAR
    color: str | None = None
    input_shape: tuple[int, ...] | None = None
    labels: Path | None = None
    name: str | None = None
    calib_samples: int = 200
    eval_samples: int = 300
    seed: int = 0
    bake_preprocess: bool = False
    safe_mode: bool = True
    threads: int | None = None
    max_accuracy_drop: float = 0.01
    selective: bool = True   # produce int8-selective when full int8 exceeds the budget
    prune: tuple[str, ...] = ()   # "channels:0.5", "magnitude:0.8": adds fp32-/int8-pruned-<method> variants
    prune_epochs: int = 3
    verbose: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "io", IoType(self.io))
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConversionError(f"unknown variant(s) {', '.join(unknown) or '(none given)'}",
                                  f"choose from: {', '.join(VARIANTS)}")
        if self.calib_samples < 1:
            raise DataError("--calib-samples must be at least 1", "the default is 200")
        if self.prune:
            from .prune import parse_prune_spec

            specs = [parse_prune_spec(p) for p in self.prune]
            if len({m for m, _ in specs}) != len(specs):
                raise ConversionError("--prune names the same method twice", "give each method once, e.g. channels:0.5")
        if not 0 <= self.max_accuracy_drop < 1:
            raise DataError("--max-accuracy-drop must be in [0, 1)", "for example 0.01 for one percentage point")


@dataclass(frozen=True)
class VariantRow:
    name: str
    mode: str
    status: B.VariantStatus
    reason: str = ""
    bytes: int = 0
    convert_s: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ConvertResult:
    bundle: Path
    manifest: B.Manifest
    rows: tuple[VariantRow, ...]
    keras: dict[str, Any]
    notes: tuple[str, ...]
    selective: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), "name": self.manifest.name, "default": self.manifest.default,
                "default_reason": self.manifest.default_reason, "keras": self.keras, "notes": list(self.notes),
                "variants": [B._jsonable(r.__dict__) for r in self.rows], "selective": B._jsonable(self.selective)}


def _shape(loaded: LoadedModel, cfg: ConvertConfig) -> tuple[int, ...]:
    if len(loaded.inputs) != 1:
        raise ModelError(f"the model has {len(loaded.inputs)} inputs; convert supports single-input models",
                         "wrap the model so it takes one input")
    shape = loaded.inputs[0].shape[1:]
    if cfg.input_shape:
        if len(cfg.input_shape) != len(shape) or any(d not in (-1, g) for d, g in zip(shape, cfg.input_shape)):
            raise ModelError(f"--input-shape {cfg.input_shape} does not fit the model's input {shape}",
                             "give the shape without the batch dimension, e.g. 224,224,3")
        return tuple(cfg.input_shape)
    if any(d == -1 for d in shape):
        raise ModelError(f"the model's input size is unknown ({', '.join('?' if d == -1 else str(d) for d in shape)})",
                         "pass --input-shape H,W,C")
    return tuple(shape)


def _spec(loaded: LoadedModel, shape: tuple[int, ...], cfg: ConvertConfig, log: Log) -> PreprocessSpec | None:
    if Path(cfg.calib).suffix.lower() in ARRAY_EXTENSIONS:
        return None
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ModelError(f"input shape {shape} is not an image (H, W, 1|3)",
                         "calibrate non-image models with a .npy/.npz file of inputs")
    h, w, c = shape
    common = dict(resize=cfg.resize, interpolation=cfg.interpolation)
    if cfg.color and c == 3:
        common["color"] = cfg.color
    lead = leading_preprocessing(loaded.model)
    explicit = cfg.scale is not None or cfg.mean is not None or cfg.std is not None
    if lead and not (cfg.preset or explicit):
        kinds = ", ".join(type(layer).__name__ for layer in lead)
        return PreprocessSpec.from_preset("raw", h, w, c, reason=f"the model starts with {kinds}: it takes raw 0..255 pixels", **common)
    if explicit:
        base = PreprocessSpec.from_preset(cfg.preset or "raw", h, w, c)
        return PreprocessSpec(height=h, width=w, channels=c, scale=cfg.scale if cfg.scale is not None else base.scale,
                              mean=cfg.mean or base.mean, std=cfg.std or base.std, preset="custom",
                              reason="explicit --scale/--mean/--std", **common)
    if not cfg.preset:
        raise DataError("the model does not start with a Rescaling/Normalization layer, so keras-edge cannot tell how "
                        "its inputs were normalised", "pass --preprocess tf|torch|caffe|unit|raw (or --scale/--mean/--std)")
    if lead:
        log(f"note: the model starts with {type(lead[0]).__name__} but --preprocess {cfg.preset} was given; using it")
    return PreprocessSpec.from_preset(cfg.preset, h, w, c, reason=f"--preprocess {cfg.preset}", **common)


def _fixed_model(loaded: LoadedModel, shape: tuple[int, ...], spec: PreprocessSpec | None, bake: bool):
    """The model with a fixed input shape, and the spec's normalisation folded in when baking."""
    import keras

    model = loaded.model
    dynamic = tuple(loaded.inputs[0].shape[1:]) != shape
    if not dynamic and not bake:
        return model, spec
    inp = keras.Input(shape=shape, name="pixels" if bake else None)
    x = inp
    if bake and spec is not None and not spec.identity_normalization:
        std = np.broadcast_to(np.asarray(spec.std, np.float32), (shape[-1],))
        mean = np.broadcast_to(np.asarray(spec.mean, np.float32), (shape[-1],))
        x = keras.layers.Rescaling(scale=spec.scale / std, offset=-mean / std, name="baked_normalization")(x)
    model = keras.Model(inp, model(x))
    if bake and spec is not None:
        spec = replace(spec, baked=True, reason=f"{spec.reason}; normalisation baked into the graph (--bake-preprocess)")
    return model, spec


def convert(cfg: ConvertConfig, log: Log = lambda s: None, progress=None) -> ConvertResult:
    """Convert, validate, and write the bundle atomically to ``cfg.out``."""
    B.check_replaceable(cfg.out)  # before the slow part, not after it
    loaded = load_model(cfg.model, safe_mode=cfg.safe_mode, verbose=cfg.verbose)
    shape = _shape(loaded, cfg)
    spec = _spec(loaded, shape, cfg, log)
    model, spec = _fixed_model(loaded, shape, spec, cfg.bake_preprocess)
    if spec is not None:
        log(f"preprocessing: {spec.preset} {spec.height}x{spec.width}x{spec.channels} {spec.color} "
            f"{spec.resize} ({spec.reason})")
    data = calibration_sets(cfg.calib, spec, cfg.eval, cfg.calib_samples, cfg.eval_samples, cfg.seed, progress)
    for note in data.notes:
        log(f"note: {note}")
    if tuple(data.calib.x.shape[1:]) != shape:
        raise DataError(f"calibration inputs have shape {data.calib.x.shape[1:]} but the model takes {shape}",
                        "give inputs of the model's shape")
    classification = _is_classifier(loaded)
    keras_out = _keras_predict(model, data.eval.x)
    if classification:
        data, keras_out = _reference_first(data, keras_out)
    keras_acc = float(np.mean(E.top1(keras_out[0]) == data.eval.y)) if classification and data.eval.y is not None else None
    keras = {"accuracy": keras_acc, "eval_samples": len(data.eval), "calib_samples": len(data.calib),
             **E.keras_latency(model, data.eval.x)}
    if keras_acc is not None:
        log(f"keras: accuracy {keras_acc:.4f} on {len(data.eval)} held-out samples")
    name = cfg.name or loaded.path.stem
    board = board_times(cfg.out)  # a reconvert keeps choosing by the board it was benchmarked on
    if board:
        log(f"note: choosing the default with the latencies measured on board {board.board} ({board.measured})")
    with B.staged_dir(cfg.out) as tmp:
        rows, variants = [], []
        for i, vname in enumerate(cfg.variants, 1):
            log(f"[{i}/{len(cfg.variants)}] {vname}: converting ({VARIANTS[vname].description})")
            row, variant = _one_variant(vname, model, data, keras_out, classification, keras_acc, tmp, cfg)
            rows.append(row)
            variants.append(variant)
            log(f"[{i}/{len(cfg.variants)}] {vname}: {_row_summary(row)}")
        for spec_text in cfg.prune:
            for row, variant in _pruned_variants(spec_text, model, data, keras_out, classification, keras_acc, tmp, cfg, log):
                rows.append(row)
                variants.append(variant)
                log(f"{row.name}: {_row_summary(row)}")
        selective = None
        int8 = next((r for r in rows if r.name == "int8" and r.status is B.VariantStatus.OK), None)
        if cfg.selective and int8 and loss_of(int8.metrics, keras_acc) > cfg.max_accuracy_drop:
            log(f"int8 exceeds the accuracy budget ({loss_of(int8.metrics, keras_acc):.2%} > {cfg.max_accuracy_drop:.2%}): "
                "searching for layers to keep in float")
            row, variant, selective = _selective(model, data, keras_out, classification, keras_acc, tmp, cfg, log)
            if row is not None:
                rows.append(row)
                variants.append(variant)
                log(f"int8-selective: {_row_summary(row)}")
        _latencies(tmp, rows, data.eval.x, cfg, log)
        if not any(r.status is B.VariantStatus.OK for r in rows):
            first = rows[0]
            raise ConversionError(f"no variant converted and validated (first: {first.name}: {first.reason})",
                                  "run with --verbose to see the converter's log")
        default, why = choose_default(rows, keras_acc, cfg.max_accuracy_drop, board)
        labels = _write_labels(tmp, cfg, data)
        np.savez(tmp / B.REFERENCE, **_reference(data, keras_out))
        manifest = B.Manifest(
            name=name, preprocess=spec, inputs=_keras_specs(loaded.inputs, shape), outputs=loaded.outputs,
            variants=tuple(variants), task=B.Task.CLASSIFICATION if classification else B.Task.OTHER, labels=labels,
            default=default, default_reason=why, reference=B.REFERENCE,
            source={"file": loaded.path.name, "sha256": _source_sha(loaded.path), "kind": loaded.kind},
            tools=_tools(), created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
        B.write_manifest(tmp, manifest)
        result = ConvertResult(Path(cfg.out), manifest, tuple(rows), keras, data.notes, selective)
        write_report(tmp, result.to_dict())
    return result


def _one_variant(vname, model, data: DataSplit, keras_out, classification, keras_acc, tmp: Path, cfg: ConvertConfig):
    t0 = time.perf_counter()
    try:
        blob, warnings = convert_variant(model, vname, ConvertInputs([data.calib.x], cfg.io), cfg.verbose)
    except VariantFailed as e:
        row = VariantRow(vname, vname, B.VariantStatus.CONVERSION_FAILED, e.reason, convert_s=time.perf_counter() - t0)
        return row, B.Variant(name=vname, mode=vname, status=row.status, reason=e.reason)
    return _validate(vname, vname, blob, time.perf_counter() - t0, warnings, data, keras_out, classification,
                     keras_acc, tmp, cfg)


def _validate(vname, mode, blob: bytes, convert_s: float, warnings: list[str], data: DataSplit, keras_out,
              classification, keras_acc, tmp: Path, cfg: ConvertConfig, extra: dict | None = None):
    """Write the variant, run it on the evaluation set in LiteRT, and record metrics and tolerances."""
    path = tmp / f"{vname}.tflite"
    path.write_bytes(blob)
    reason = "; ".join(warnings)
    try:
        tfl = E.load_tflite(path, cfg.threads)
        outs = E.predict(tfl, [data.eval.x])
        cmp = E.compare(outs, keras_out, data.eval.y, classification)
        ref = E.compare([o[:REFERENCE_SAMPLES] for o in outs], [k[:REFERENCE_SAMPLES] for k in keras_out], None, classification)
    except Exception as e:  # noqa: BLE001 - any interpreter failure means "does not run here"
        text = (e.what if isinstance(e, EdgeError) else str(e)).replace(str(path), path.name).strip()
        why = f"does not run in the interpreter: {text.splitlines()[0][:400] if text else type(e).__name__}"
        row = VariantRow(vname, mode, B.VariantStatus.VALIDATION_FAILED, "; ".join(filter(None, [reason, why])),
                         path.stat().st_size, convert_s)
        return row, B.Variant(name=vname, mode=mode, status=row.status, file=path.name, sha256=B.sha256_file(path),
                              bytes=row.bytes, reason=row.reason)
    metrics = {**cmp, "gzip_bytes": len(gzip.compress(blob, compresslevel=9, mtime=0)),
               "threads": tfl_threads(cfg), "convert_s": round(convert_s, 2), **(extra or {})}
    if keras_acc is not None and cmp["accuracy"] is not None:
        metrics["accuracy_drop"] = round(keras_acc - cmp["accuracy"], 6)
    status = B.VariantStatus.OK if not warnings else B.VariantStatus.VALIDATION_FAILED
    floor = TOLERANCE_FLOOR.get(mode, TOLERANCE_FLOOR.get(mode.split("-")[0], 1e-2))
    tol = B.Tolerance(max_abs=float(max(2 * ref["max_abs_err"], floor)),
                      min_agreement=max(0.0, (ref["agreement"] or 1.0) - 1 / REFERENCE_SAMPLES) if classification else 1.0,
                      gpu_max_abs=float(max(2 * ref["max_abs_err"], floor) + B.gpu_slack(mode)))
    row = VariantRow(vname, mode, status, reason, path.stat().st_size, convert_s, metrics)
    variant = B.Variant(name=vname, mode=mode, status=status, file=path.name, sha256=B.sha256_file(path),
                        bytes=row.bytes, reason=reason, inputs=tfl.inputs, outputs=tfl.outputs, tolerance=tol,
                        metrics=metrics)
    return row, variant


def _latencies(tmp: Path, rows: list[VariantRow], x: np.ndarray, cfg: ConvertConfig, log: Log) -> None:
    """Time every validated variant side by side, interleaved round by round, so that load on the
    machine hits all of them alike (timing each right after its conversion made the default a coin toss)."""
    measured = [r for r in rows if r.status is B.VariantStatus.OK]
    if not measured:
        return
    counts = [tfl_threads(cfg)] + ([1] if cfg.threads is None and tfl_threads(cfg) > 1 else [])
    log(f"timing {len(measured)} variant(s) side by side ({', '.join(f'{t} thread(s)' for t in counts)})")
    for threads in counts:
        models = {r.name: E.load_tflite(tmp / f"{r.name}.tflite", threads) for r in measured}
        stats = E.side_by_side(models, [x])
        for r in measured:
            p50, p90 = stats[r.name]
            if threads == counts[0]:
                r.metrics.update(latency_ms=round(p50, 4), latency_p90_ms=round(p90, 4))
            r.metrics.setdefault("latency_by_threads", {})[str(threads)] = round(p50, 4)


PRUNED_BASES = ("fp32", "int8")


def _pruned_variants(spec_text: str, model, data: DataSplit, keras_out, classification, keras_acc, tmp: Path,
                     cfg: ConvertConfig, log: Log):
    """Prune the model (fine-tuned on the labeled --calib images, never the evaluation ones), convert and validate."""
    from keras_edge.calibration.dataset import load_labeled

    from .prune import parse_prune_spec, prune_model

    method, sparsity = parse_prune_spec(spec_text)
    eval_sources = set(data.eval.sources)
    train = load_labeled(cfg.calib, _spec_of(data), seed=cfg.seed) if data.calib.y is not None else None
    if train is None or train.y is None:
        raise DataError(f"--prune {spec_text} fine-tunes the pruned model and needs labeled --calib images",
                        "arrange --calib as ROOT/<class>/<image>")
    keep = np.array([s not in eval_sources for s in train.sources])
    log(f"pruning: {method} at {sparsity:.0%}, fine-tuning {cfg.prune_epochs} epoch(s) on {int(keep.sum())} labeled images")
    from .tfenv import captured_output

    with captured_output(not cfg.verbose):
        res = prune_model(model, method, sparsity, train.x[keep], train.y[keep], cfg.prune_epochs,
                          distill=method == "channels", verbose=0)
    info = {"method": method, "sparsity": sparsity, "achieved": round(res.achieved, 4),
            "params_before": res.params_before, "params_after": res.params_after,
            "flops_before": res.flops_before, "flops_after": res.flops_after,
            "skipped_layers": [s.to_dict() for s in res.skipped]}
    log(f"pruning: {res.achieved:.1%} removed, params {res.params_before:,} → {res.params_after:,}"
        + (f", FLOPs {res.flops_before:,} → {res.flops_after:,}" if res.flops_before else "")
        + (f"; left unpruned: {', '.join(s.name for s in res.skipped)}" if res.skipped else ""))
    out = []
    for base in PRUNED_BASES:
        if base not in cfg.variants:
            continue
        name = f"{base}-pruned-{method}"
        t0 = time.perf_counter()
        try:
            blob, warnings = convert_variant(res.model, base, ConvertInputs([data.calib.x], cfg.io), cfg.verbose)
        except VariantFailed as e:
            row = VariantRow(name, name, B.VariantStatus.CONVERSION_FAILED, e.reason, convert_s=time.perf_counter() - t0)
            out.append((row, B.Variant(name=name, mode=name, status=row.status, reason=e.reason)))
            continue
        out.append(_validate(name, name, blob, time.perf_counter() - t0, warnings, data, keras_out, classification,
                             keras_acc, tmp, cfg, {"pruning": info}))
    return out


def _spec_of(data: DataSplit):
    """The preprocessing spec the calibration data was loaded with (kept on the split for reuse)."""
    if data.spec is None:
        raise DataError("pruning from arrays is not supported by convert", "use `keras-edge prune` on the model first")
    return data.spec


def tfl_threads(cfg: ConvertConfig) -> int:
    return cfg.threads or os.cpu_count() or 1


def loss_of(metrics: dict[str, Any], keras_acc: float | None) -> float:
    """Accuracy drop against Keras when labels exist, otherwise disagreement with Keras."""
    if keras_acc is not None and metrics.get("accuracy") is not None:
        return keras_acc - metrics["accuracy"]
    return 1.0 - metrics["agreement"] if metrics.get("agreement") is not None else 0.0


def _selective(model, data: DataSplit, keras_out, classification, keras_acc, tmp: Path, cfg: ConvertConfig, log: Log):
    """int8-selective: the int8 variant with its worst layers kept in float, within the accuracy budget."""
    from .selective import selective_int8

    def evaluate(blob: bytes) -> float:
        probe = tmp / ".selective-probe.tflite"
        probe.write_bytes(blob)
        outs = E.predict(E.load_tflite(probe, cfg.threads), [data.eval.x])
        probe.unlink()
        return loss_of(E.compare(outs, keras_out, data.eval.y, classification), keras_acc)

    t0 = time.perf_counter()
    res = selective_int8(model, ConvertInputs([data.calib.x], cfg.io), evaluate, cfg.max_accuracy_drop, cfg.verbose, log)
    table = [e.to_dict() for e in res.layers[:12]]
    if not res.fits:
        lines = [f"    {e.channel_nsr:10.4f}  {e.rmse_scale:8.3f}  {e.op:16s} {e.tensor[:70]}" for e in res.layers[:12]]
        log("int8-selective: no mix of int8 and float layers fits the budget "
            f"(best loss {res.loss:.2%} with {len(res.denylist)} ops in float); per-layer quantization error, worst first:\n"
            "    chan-NSR    rmse/s    op               tensor\n" + "\n".join(lines))
        return None, None, {"fits": False, "best_loss": res.loss, "tried": res.tried, "layers": table}
    extra = {"float_ops": list(res.denylist), "selective_tried": [list(t) for t in res.tried]}
    row, variant = _validate("int8-selective", "int8-selective", res.model, time.perf_counter() - t0, [], data,
                             keras_out, classification, keras_acc, tmp, cfg, extra)
    return row, variant, {"fits": True, "float_ops": list(res.denylist), "tried": res.tried, "layers": table}


@dataclass(frozen=True)
class BoardTimes:
    """p50 latency per variant measured on a board by `keras-edge bench --on` (from the previous bundle's report)."""

    board: str
    measured: str
    latency_ms: dict[str, float]


def board_times(bundle_dir: Path) -> BoardTimes | None:
    """The most recent board benchmark stored in an existing bundle at ``bundle_dir`` (most threads per variant)."""
    path = Path(bundle_dir) / B.REPORT_JSON
    try:
        boards = json.loads(path.read_text(encoding="utf-8")).get("boards") or {}
    except (OSError, ValueError, AttributeError):
        return None
    entries = [e for e in boards.values() if isinstance(e, dict) and e.get("bench", {}).get("results")]
    if not entries:
        return None
    latest = max(entries, key=lambda e: str(e.get("measured", "")))
    best: dict[str, tuple[int, float]] = {}
    for r in latest["bench"]["results"]:
        if r.get("median_ms") and not r.get("error"):
            threads = int(r.get("threads") or 0)
            if r["variant"] not in best or threads > best[r["variant"]][0]:
                best[r["variant"]] = (threads, float(r["median_ms"]))
    return BoardTimes(str(latest.get("fingerprint", "board")), str(latest.get("measured", "")),
                      {k: v for k, (_, v) in best.items()}) if best else None


def choose_default(rows, keras_acc: float | None, max_drop: float, board: BoardTimes | None = None) -> tuple[str, str]:
    """The fastest validated variant whose accuracy drop (or disagreement) fits the budget.

    Speed comes from a board benchmark when one covers every fitting variant, else from the workstation.
    """
    ok = [r for r in rows if r.status is B.VariantStatus.OK]
    loss = lambda r: loss_of(r.metrics, keras_acc)  # noqa: E731
    fits = [r for r in ok if loss(r) <= max_drop + 1e-12]
    what = "accuracy drop" if keras_acc is not None else "disagreement with Keras"
    if not fits:
        best = min(ok, key=loss)
        return best.name, f"no variant fits the {what} budget of {max_drop:.2%}; {best.name} has the smallest ({loss(best):.2%})"
    on_board = board is not None and all(r.name in board.latency_ms for r in fits)
    speed = (lambda r: board.latency_ms[r.name]) if on_board else (lambda r: r.metrics["latency_ms"])  # noqa: E731
    where = f"on board {board.board} (bench --on, {board.measured})" if on_board else "side by side on the workstation"
    fastest = min(speed(r) for r in fits)
    # within 5% of the fastest is within measurement noise: prefer less loss, then the smaller file
    close = [r for r in fits if speed(r) <= fastest * (1 + NOISE)]
    best = min(close, key=lambda r: (round(loss(r), 6), r.bytes))
    tie = (f"; {', '.join(r.name for r in close if r is not best)} within {NOISE:.0%}, this one has less loss or a smaller file"
           if len(close) > 1 else "")
    return best.name, (f"fastest measured {where} ({speed(best):.3f} ms p50) among "
                       f"variants within the {what} budget of {max_drop:.2%} ({loss(best):+.2%}){tie}")


def _row_summary(row: VariantRow) -> str:
    if row.status is B.VariantStatus.CONVERSION_FAILED:
        return f"FAILED to convert: {row.reason}"
    m = row.metrics
    parts = [f"{row.bytes / 1024:.1f} KiB"]
    if m.get("accuracy") is not None:
        parts.append(f"acc {m['accuracy']:.4f}")
    if m.get("agreement") is not None:
        parts.append(f"agree {m['agreement']:.4f}")
    if "latency_ms" in m:
        parts.append(f"{m['latency_ms']:.3f} ms")
    parts.append(f"converted in {row.convert_s:.1f}s")
    head = "ok" if row.status is B.VariantStatus.OK else f"VALIDATION FAILED ({row.reason})"
    return f"{head}: " + ", ".join(parts)


def _is_classifier(loaded: LoadedModel) -> bool:
    out = loaded.outputs
    return len(out) == 1 and len(out[0].shape) == 2 and out[0].shape[-1] > 1


def _keras_predict(model, x: np.ndarray) -> list[np.ndarray]:
    from .tfenv import captured_output

    with captured_output():
        y = model.predict(x, batch_size=64, verbose=0)
    ys = y if isinstance(y, (list, tuple)) else [y]
    return [np.asarray(v, np.float32) for v in ys]


def _reference_first(data: DataSplit, keras_out: list[np.ndarray]) -> tuple[DataSplit, list[np.ndarray]]:
    """Reorder the evaluation set so its first REFERENCE_SAMPLES (the board's reference inputs) span
    as many classes as possible (by label, else by the Keras prediction), not just the first class."""
    cls = data.eval.y if data.eval.y is not None else E.top1(keras_out[0])
    by_class: dict[int, list[int]] = {}
    for i, c in enumerate(cls.tolist()):
        by_class.setdefault(c, []).append(i)
    first: list[int] = []
    while len(first) < min(REFERENCE_SAMPLES, len(cls)):
        for ix in by_class.values():
            if ix and len(first) < REFERENCE_SAMPLES:
                first.append(ix.pop(0))
    order = np.array(first + sorted(set(range(len(cls))) - set(first)))
    ev = data.eval
    ev = replace(ev, x=ev.x[order], y=None if ev.y is None else ev.y[order],
                 sources=tuple(ev.sources[i] for i in order) if ev.sources else ev.sources)
    return replace(data, eval=ev), [k[order] for k in keras_out]


def _reference(data: DataSplit, keras_out: list[np.ndarray]) -> dict[str, np.ndarray]:
    ref = {"input_0": data.eval.x[:REFERENCE_SAMPLES].astype(np.float32)}
    for i, y in enumerate(keras_out):
        ref[f"output_{i}"] = y[:REFERENCE_SAMPLES].astype(np.float32)
    return ref


def _write_labels(tmp: Path, cfg: ConvertConfig, data: DataSplit) -> str | None:
    if cfg.labels:
        if not Path(cfg.labels).is_file():
            raise DataError(f"{cfg.labels}: no such labels file", "give a text file with one class name per line")
        shutil.copyfile(cfg.labels, tmp / "labels.txt")
        return "labels.txt"
    if data.calib.class_names:
        (tmp / "labels.txt").write_text("\n".join(data.calib.class_names) + "\n", encoding="utf-8")
        return "labels.txt"
    return None


def _keras_specs(specs, shape) -> tuple[B.TensorSpec, ...]:
    return tuple(B.TensorSpec(s.name, (1, *shape) if i == 0 else s.shape, s.dtype) for i, s in enumerate(specs))


def _source_sha(path: Path) -> str:
    if path.is_dir():
        return B.sha256_file(path / "saved_model.pb")
    return B.sha256_file(path)


def _tools() -> dict[str, str]:
    import keras
    import tensorflow as tf
    from importlib.metadata import version

    from keras_edge.device import __version__

    tools = {"keras-edge": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
             "numpy": np.__version__, "python": platform.python_version()}
    try:
        tools["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        pass
    return tools
