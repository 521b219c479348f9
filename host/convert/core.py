"""`keras-edge convert`: a Keras model → a bundle of validated TFLite variants.

Each variant is converted, loaded in the board's own engine and validated against the Keras model
on held-out samples. One variant failing does not lose the others: each gets a status and a reason.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import platform
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_edge.calibration.dataset import DataSplit, calibration_sets, check_source, input_sets
from keras_edge.device.contract import bundle as B
from keras_edge.device.contract import tolerances
from keras_edge.device.contract import in_range, positive_float, positive_int
from keras_edge.device.contract import ConfigError, DataError, EdgeError
from keras_edge.device.contract.files import replace_file
from keras_edge.host.errors import ConversionError
from keras_edge.device.inputs import PreprocessSpec

from ..model_io import LoadedModel, check_model_path, load_model
from ..preprocessing import PreprocessOptions, specs_for_data
from ..prune.base import PruneSpec
from ..report.contract import Report, VariantRecord, read_report
from ..report.render import write_report
from ..tflite import evaluate as E
from . import iomap
from ..tflite.evaluate import summary
from ..tflite.fidelity import pp
from .classes import check_folder_order, read_labels
from ..tflite.fidelity import constant_outputs
from .improve import improve_int8
from .integer import integer_route
from .pixelgrid import pixel_grid
from . import tasks as T
from .tasks import check_options as check_task_options
from keras_edge.device.outputs import TaskOptions
from .choose import board_times, choose, loss_of, verdict_of
from ..tflite.variants import DEFAULT_VARIANTS, VARIANTS, ConvertInputs, IoType, VariantFailed
from ..tflite.variants import convert as convert_variant
from .target import check_board, predict_variants

Log = Callable[[str], None]
REFERENCE_SAMPLES = 8


@dataclass(frozen=True)
class ConvertConfig:
    """What to convert and how; validated on construction (errors name the field, not a flag).

    ``model`` is a path (.keras, .h5, SavedModel directory) or a Keras model object.
    """

    model: Any
    out: Path
    calib: Path
    eval: Path | None = None
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    io: IoType = IoType.UINT8
    preprocess: PreprocessOptions = field(default_factory=PreprocessOptions)
    labels: Path | None = None
    name: str | None = None
    calib_samples: int = 200
    eval_samples: int | None = None   # None: every image not used for calibration
    seed: int = 0
    bake_preprocess: bool = False
    safe_mode: bool = True
    imports: tuple[str, ...] = ()     # user modules that register custom/subclassed Keras classes
    threads: int | None = None
    max_accuracy_drop: float = 0.01
    selective: bool = True   # produce int8-selective when full int8 exceeds the budget
    ptq: bool = True         # equalization + bias correction (int8-ptq) when full int8 exceeds the budget
    search_time: float = 120.0   # seconds the int8-selective search may take
    eval_time: float = 600.0     # seconds one variant's evaluation may take (estimated from one timed inference)
    qat: bool = True         # quantization-aware fine-tuning (int8-qat) when the post-training steps miss the budget
    qat_always: bool = False  # ... and also when they meet it
    qat_time: float = 90.0   # seconds the fine-tuning may take (it stops after the step that crosses it)
    qat_epochs: int = 40     # a ceiling: the time limit ends it sooner on most models
    prune: tuple[PruneSpec, ...] = ()  # adds fp32-/int8-pruned-<method> variants
    prune_epochs: int = 3
    # what the outputs mean, how they are postprocessed and scored (host/convert/tasks.py)
    task_options: TaskOptions = field(default_factory=TaskOptions)
    annotations: Path | None = None  # YOLO labels folder, COCO .json or masks folder for the evaluation images
    pixel_grid: bool = True          # move a half-pixel mean into the first layer (host/convert/pixelgrid.py)
    float_softmax: bool = True       # int8 classifiers: float softmax over int8 logits (host/tflite/softmax_head.py)
    board: str | None = None         # a board kind (device/profile/boards.json): predict each variant's latency there
    verbose: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "calib", Path(self.calib))
        object.__setattr__(self, "io", IoType(self.io))
        object.__setattr__(self, "variants", tuple(self.variants))
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise ConfigError("variants", f"names unknown variant(s) {', '.join(unknown) or '(none given)'}",
                              f"choose from: {', '.join(VARIANTS)}")
        positive_int("calib_samples", self.calib_samples, "at least 1 (the default is 200)")
        if self.eval_samples is not None:
            positive_int("eval_samples", self.eval_samples, "at least 1, or leave it unset to evaluate on every image")
        if self.threads is not None:
            positive_int("threads", self.threads, "a thread count such as 4")
        positive_int("prune_epochs", self.prune_epochs, "0 or more epochs", minimum=0)
        positive_float("search_time", self.search_time, "a number of seconds such as 120")
        positive_float("eval_time", self.eval_time, "a number of seconds such as 600")
        positive_int("qat_epochs", self.qat_epochs, "at least 1 epoch (the default is 40, a ceiling under qat_time)")
        positive_float("qat_time", self.qat_time, "a number of seconds such as 90")
        object.__setattr__(self, "prune", tuple(p if isinstance(p, PruneSpec) else PruneSpec(*p) for p in self.prune))
        if len({p.method for p in self.prune}) != len(self.prune):
            raise ConfigError("prune", "names the same method twice", "give each method once, e.g. channels:0.5")
        in_range("max_accuracy_drop", self.max_accuracy_drop, 0.0, 1.0, "a fraction such as 0.01 for one percentage point")
        if self.annotations is not None:
            object.__setattr__(self, "annotations", Path(self.annotations))
        check_task_options(self)
        check_board(self.board)
        if self.name is not None and not B.NAME.fullmatch(self.name):  # deploy makes it a directory on the board
            raise ConfigError("name", f"{self.name!r} cannot be a bundle name",
                              "use letters, digits, '.', '_' and '-', starting with a letter or digit")


@dataclass(frozen=True)
class ConvertResult:
    bundle: Path
    manifest: B.Manifest
    report: Report

    @property
    def variants(self) -> tuple[B.Variant, ...]:
        return self.manifest.variants

    @property
    def keras(self) -> dict[str, Any]:
        """The Keras model's own accuracy and latency on the same evaluation set."""
        return self.report.keras

    @property
    def selective(self) -> dict[str, Any] | None:
        """What the int8-selective search tried (None when it did not run)."""
        return self.report.selective

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": str(self.bundle), **self.report.to_dict()}


@dataclass(frozen=True)
class _Job:
    """What every variant of one conversion is validated against."""

    model: Any
    data: DataSplit
    keras_out: list[np.ndarray]
    classification: bool
    keras_acc: float | None
    tmp: Path
    cfg: ConvertConfig
    keras_output_names: tuple[str, ...] = ()   # the Keras outputs' names, in Keras order
    task: T.TaskEval | None = None   # detection/segmentation: the task metric, through the board's postprocessing
    constant: bool = False           # the Keras outputs do not vary across inputs: no int8 search (said once)

    @property
    def inputs(self) -> ConvertInputs:
        names = tuple(str(t.name) for t in self.model.inputs) if len(self.model.inputs) > 1 else ()
        return ConvertInputs(self.data.calib.inputs, self.cfg.io, names=names, float_softmax=self.cfg.float_softmax)

    def io_order(self, path: Path, tfl) -> tuple[tuple[int, ...], tuple[int, ...], list[np.ndarray]]:
        """(input_order, output_order, the evaluation outputs in Keras order) of a converted file: the
        tensors are matched by name through its signature, else by shape and values; () orders are the identity."""
        xs = self.data.eval.inputs
        if len(xs) == 1 and len(self.keras_out) == 1:
            return (), (), E.predict(tfl, xs)
        keras_names = [str(t.name) for t in self.model.inputs]
        ins, outs = iomap.io_order(path, tfl.inputs, tfl.outputs, keras_names, list(self.output_names))
        if ins is None:
            ins = iomap.match_inputs(tfl.inputs, [x.shape[1:] for x in xs])
        if ins is None:
            raise ConversionError("the converted model's inputs cannot be matched to the Keras inputs by name or shape",
                                  "give the model's inputs distinct names")
        got = E.predict(tfl, [xs[k] for k in ins])
        if outs is None:
            outs = iomap.match_outputs(got, self.keras_out)
        if outs is None:
            raise ConversionError("the converted model's outputs cannot be matched to the Keras outputs by name or shape",
                                  "give the model's outputs distinct names")
        ordered: list[np.ndarray] = [np.empty(0)] * len(got)
        for i, j in enumerate(outs):
            ordered[j] = got[i]
        return (tuple(ins) if len(xs) > 1 else ()), (tuple(outs) if len(got) > 1 else ()), ordered

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.keras_output_names) if self.keras_output_names else tuple(f"output_{i}" for i in range(len(self.keras_out)))

    def convert(self, name: str, mode: str, model: Any = None, extra: dict | None = None) -> B.Variant:
        """Convert ``model`` (default: the job's) with recipe ``mode``, then validate it as ``name``."""
        t0 = time.perf_counter()
        try:
            blob, warnings = convert_variant(self.model if model is None else model, mode, self.inputs, self.cfg.verbose)
        except VariantFailed as e:
            return B.Variant(name=name, mode=name, status=B.VariantStatus.CONVERSION_FAILED, reason=e.reason,
                             metrics={"convert_s": round(time.perf_counter() - t0, 2)})
        return self.validate(name, name, blob, time.perf_counter() - t0, warnings, extra)

    def validate(self, name: str, mode: str, blob: bytes, convert_s: float, warnings: list[str],
                 extra: dict | None = None) -> B.Variant:
        """Write the variant, run it on the evaluation set in the board's engine, record metrics and tolerances."""
        path = self.tmp / f"{name}.tflite"
        replace_file(path, blob)   # int8 made again after a rewrite reuses its name: never rewritten in place
        reason = "; ".join(warnings)
        timing = {"convert_s": round(convert_s, 2)}
        try:
            tfl = E.load_tflite(path, self.cfg.threads)
            over = self.over_eval_time(tfl)
            if over:
                return B.Variant(name=name, mode=mode, status=B.VariantStatus.VALIDATION_FAILED, file=path.name,
                                 sha256=B.sha256_file(path), bytes=path.stat().st_size,
                                 reason="; ".join(filter(None, [reason, over])), metrics={**timing, "not_evaluated": over})
            input_order, output_order, outs = self.io_order(path, tfl)
            cmp = E.compare(outs, self.keras_out, self.data.eval.y, self.classification)
            ref = E.compare([o[:REFERENCE_SAMPLES] for o in outs], [k[:REFERENCE_SAMPLES] for k in self.keras_out],
                            None, self.classification)
            if self.task is not None:
                cmp.update(self.task.metrics(outs))
            elif not input_order and not output_order:   # the other rounding order of a quantized input
                cmp.update(E.compare_bare(tfl, self.data.eval.inputs, self.keras_out, self.data.eval.y, self.classification))
        except Exception as e:  # noqa: BLE001 - any interpreter failure means "does not run here"
            text = (e.what if isinstance(e, EdgeError) else str(e)).replace(str(path), path.name).strip()
            why = f"does not run in the interpreter: {text.splitlines()[0][:400] if text else type(e).__name__}"
            return B.Variant(name=name, mode=mode, status=B.VariantStatus.VALIDATION_FAILED, file=path.name,
                             sha256=B.sha256_file(path), bytes=path.stat().st_size,
                             reason="; ".join(filter(None, [reason, why])), metrics=timing)
        metrics = {**cmp, "gzip_bytes": len(gzip.compress(blob, compresslevel=9, mtime=0)),
                   "threads": tfl_threads(self.cfg), **timing, **(extra or {})}
        if self.keras_acc is not None and cmp["accuracy"] is not None:
            metrics["accuracy_drop"] = round(self.keras_acc - cmp["accuracy"], 6)
        metrics["verdict"] = verdict_of(metrics, self.keras_acc, self.cfg.max_accuracy_drop).to_dict()
        if len(outs) > 1:   # each output on its own: its name and error in the metrics, its own verify bound
            for entry, out_name in zip(metrics.get("per_output", []), self.output_names):
                entry["name"] = out_name
        tol = reference_tolerance(ref, mode, self.classification, len(outs) > 1)
        return B.Variant(name=name, mode=mode, status=B.VariantStatus.OK if not warnings else B.VariantStatus.VALIDATION_FAILED,
                         file=path.name, sha256=B.sha256_file(path), bytes=path.stat().st_size, reason=reason,
                         inputs=tfl.inputs, outputs=tfl.outputs, tolerance=tol, metrics=metrics,
                         input_order=input_order, output_order=output_order)

    def over_eval_time(self, tfl) -> str:
        """Why the variant is not evaluated when one timed inference says its evaluation (and timing) would
        overrun ``cfg.eval_time``; '' when it fits."""
        xs = self.data.eval.inputs
        if len(xs) > 1:   # several inputs: the file may order them otherwise (io_order matches them later)
            return ""
        E.run_one(tfl, [x[:1] for x in xs])   # warm-up: the first call allocates and packs weights
        t0 = time.perf_counter()
        E.run_one(tfl, [x[:1] for x in xs])
        one = time.perf_counter() - t0
        runs = len(xs[0]) + 2 * E.TIMING_INVOKES   # evaluation, then timing at all cores and at one thread
        if one * runs <= self.cfg.eval_time:
            return ""
        return (f"not evaluated: one inference takes {one:.2f}s here, so {len(xs[0])} evaluation inputs and the timing "
                f"runs would take ~{one * runs / 60:.0f} min, over the {self.cfg.eval_time:.0f}s bound (--eval-time); "
                "measure it on the board with `keras-edge bench`")

    def loss(self, v: B.Variant) -> float:
        return loss_of(v.metrics, self.keras_acc)


def _fixed_model(loaded: LoadedModel, shapes: tuple[tuple[int, ...], ...], spec: PreprocessSpec | None, bake: bool):
    """The model with fixed input shapes (same input names), and the spec's normalisation folded in when baking."""
    import keras

    model = loaded.model
    dynamic = any(tuple(t.shape[1:]) != shape for t, shape in zip(loaded.inputs, shapes))
    bake = bake and len(shapes) == 1
    if not dynamic and not bake:
        return model, spec
    if len(shapes) > 1:
        inps = [keras.Input(shape=shape, name=t.name, dtype=t.dtype) for t, shape in zip(loaded.inputs, shapes)]
        return keras.Model(inps, model(inps), name=model.name), spec
    shape = shapes[0]
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


def _integer_inputs(cfg: ConvertConfig) -> bool:
    """Whether any variant will take quantized inputs (an integer input grid): the calibrated ones with integer I/O."""
    return cfg.io is not IoType.FLOAT32 and any(VARIANTS[v].calibrated for v in cfg.variants)


def convert(cfg: ConvertConfig, log: Log = lambda s: None, progress=None) -> ConvertResult:
    """Convert, validate, and write the bundle atomically to ``cfg.out``."""
    B.check_replaceable(cfg.out)  # before the slow part, not after it
    previous = _previous_report(cfg.out, log)
    _check_labels_file(cfg.labels)
    if isinstance(cfg.model, (str, os.PathLike)):   # wrong paths fail here, before TensorFlow is imported
        check_model_path(cfg.model)
    for source in (cfg.calib, cfg.eval):
        if source is not None:
            check_source(source)
    loaded = load_model(cfg.model, safe_mode=cfg.safe_mode, verbose=cfg.verbose, imports=cfg.imports)
    shapes, specs = specs_for_data(loaded, cfg.preprocess, cfg.calib, log)
    shape, spec = shapes[0], specs[0]
    model, spec = _fixed_model(loaded, shapes, spec, cfg.bake_preprocess)
    if spec is not None:
        log(f"preprocessing: {spec.preset} {spec.height}x{spec.width}x{spec.channels} {spec.color} "
            f"{spec.resize} ({spec.reason})")
    post_spec = T.resolve(cfg, loaded.outputs, spec, log)   # outputs that do not fit the task: before the slow part
    classification = post_spec is not None and post_spec.task is B.Task.CLASSIFICATION
    classes = loaded.outputs[0].shape[-1] if classification else None
    if post_spec is not None and post_spec.num_classes and post_spec.task in (B.Task.CLASSIFICATION, B.Task.DETECTION):
        _check_label_count(cfg.labels, post_spec.num_classes)
    if len(shapes) > 1:   # several inputs: arrays keyed by input name
        data = input_sets(cfg.calib, [t.name for t in loaded.inputs], shapes, cfg.eval, cfg.calib_samples,
                          cfg.eval_samples, cfg.seed)
    else:
        names = read_labels(cfg.labels) if classification else None   # folders map to outputs by these names
        data = calibration_sets(cfg.calib, spec, cfg.eval, cfg.calib_samples, cfg.eval_samples, cfg.seed, progress,
                                labels=names)
        if _integer_inputs(cfg) and cfg.pixel_grid:   # the half-pixel input grid of 'tf'-style means
            shifted = pixel_grid(model, spec, data.calib.x, log, log if cfg.verbose else (lambda s: None))
            if shifted is not None:
                model, spec = shifted
                data = calibration_sets(cfg.calib, spec, cfg.eval, cfg.calib_samples, cfg.eval_samples, cfg.seed,
                                        labels=names)
    if classes:
        data = data.labels_fit(classes)
    truths = T.load_truths(post_spec, data.eval.sources if data.spec is not None else (), cfg.annotations)
    for note in data.notes:
        log(f"note: {note}")
    if len(shapes) == 1 and tuple(data.calib.x.shape[1:]) != shape:
        raise DataError(f"calibration inputs have shape {data.calib.x.shape[1:]} but the model takes {shape}",
                        "give inputs of the model's shape")
    keras_out = _keras_predict(model, data.eval.inputs if len(shapes) > 1 else data.eval.x)
    constant = constant_outputs(keras_out)
    if constant:
        log(f"note: {constant}")
        data = replace(data, notes=(*data.notes, constant))
    if classification:
        check_folder_order(data.eval.y, E.top1(keras_out[0]), data.eval.class_names, cfg.labels is not None)
        data, keras_out = _reference_first(data, keras_out)
    keras_acc = float(np.mean(E.top1(keras_out[0]) == data.eval.y)) if classification and data.eval.y is not None else None
    task_eval = T.task_eval(post_spec, loaded.outputs, data.spec, data.eval.sources, truths, keras_out,
                            cfg.task_options.anchors, log)
    keras = {"accuracy": keras_acc, "eval_samples": len(data.eval), "calib_samples": len(data.calib),
             **(task_eval.keras if task_eval else {}),
             **E.keras_latency(model, data.eval.inputs if len(shapes) > 1 else data.eval.x)}
    if keras_acc is not None:
        log(f"keras: accuracy {keras_acc:.4f} on {len(data.eval)} evaluation samples")
    board = board_times(previous, cfg.board)  # a reconvert keeps choosing by the board it was benchmarked on
    if board:
        log(f"note: choosing the default with the latencies measured on board {board.board} ({board.measured})")
    elif cfg.board and board_times(previous):
        log(f"note: the previous version was benchmarked on boards that are not of kind {cfg.board}; "
            "their latencies do not decide the default")
    with B.staged_dir(cfg.out) as tmp:
        job = _Job(model, data, keras_out, classification, keras_acc, tmp, cfg, task=task_eval,
                   keras_output_names=tuple(t.name for t in loaded.outputs), constant=bool(constant))
        if cfg.task_options.anchors is not None:
            shutil.copyfile(cfg.task_options.anchors, tmp / T.ANCHORS_FILE)
        if cfg.task_options.references is not None:
            shutil.copyfile(cfg.task_options.references, tmp / T.REFERENCES_FILE)
        variants: list[B.Variant] = []
        for i, vname in enumerate(cfg.variants, 1):
            log(f"[{i}/{len(cfg.variants)}] {vname}: converting ({VARIANTS[vname].description})")
            variants.append(job.convert(vname, vname))
            log(f"[{i}/{len(cfg.variants)}] {vname}: {summary(variants[-1])}")
        pruning = None
        for prune_spec in cfg.prune:
            pruned, curve = _pruned_variants(job, prune_spec, log)
            pruning = curve or pruning
            for v in pruned:
                variants.append(v)
                log(f"{v.name}: {summary(v)}")
        route = None
        if len(shapes) > 1:
            selective, ptq_info = None, None
            if any(v.name == "int8" and v.status is B.VariantStatus.OK and job.loss(v) > cfg.max_accuracy_drop
                   for v in variants):
                log("note: int8 misses the budget; the int8 improvements (ptq, selective, qat) take single-input models")
        else:
            job, route = integer_route(job, variants, log)   # int8 with ops left in float: rewrite, else int8-mixed
            selective, ptq_info = improve_int8(job, variants, log)
        variants = _with_latencies(tmp, variants, data.eval.inputs, cfg, log)
        predicted = None
        if cfg.board:
            variants, predicted = predict_variants(tmp, variants, cfg.board, previous, cfg.out, log)
        if not any(v.status is B.VariantStatus.OK for v in variants):
            first = variants[0]
            raise ConversionError(f"no variant converted and validated (first: {first.name}: {first.reason})",
                                  "run with verbose logs to see the converter's output")
        choice = choose(variants, keras_acc, cfg.max_accuracy_drop, board, predicted)
        default, why = choice.name, choice.reason
        variants, misses = _budget_marks(variants, job.loss, cfg.max_accuracy_drop)
        for note in misses:
            log(f"note: {note}")
        chosen = next((v.metrics.get("verdict") for v in variants if v.name == default), None)
        if chosen and chosen.get("decision") == "cannot resolve":   # said, not decided on noise
            log(f"note: the default {default}: {chosen['text']}")
        labels = _write_labels(tmp, cfg, data)
        np.savez(tmp / B.REFERENCE, **_reference(data, keras_out))
        name = cfg.name or loaded.name
        manifest = B.Manifest(
            name=name, preprocess=spec, inputs=_keras_specs(loaded.inputs, shapes), outputs=loaded.outputs,
            input_preprocess=specs if len(specs) > 1 else (),
            variants=tuple(variants), task=post_spec.task if post_spec is not None else B.Task.OTHER, labels=labels,
            default=default, default_reason=why, reference=B.REFERENCE,
            source={"file": loaded.path.name if loaded.path else f"<{loaded.name}>",
                    "sha256": _source_sha(loaded.path) if loaded.path else None, "kind": loaded.kind},
            tools=_tools(), created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            postprocess=post_spec, default_basis=str(choice.basis), target_board=cfg.board)
        B.write_manifest(tmp, manifest)
        target = {"basis": str(choice.basis), "board": cfg.board,
                  **({"measured_on": board.board, "measured": board.measured} if board else {}),
                  **(predicted.to_dict() if predicted else {})}
        report = Report(name=name, default=default, default_reason=why, keras=keras, notes=(*data.notes, *misses),
                        budget=cfg.max_accuracy_drop,
                        variants=tuple(VariantRecord.of(v) for v in variants),
                        selective=selective, ptq=ptq_info, pruning=pruning, target=target,
                        integer=route).with_boards_of(previous)
        write_report(tmp, report)
    return ConvertResult(Path(cfg.out), manifest, report)


INTEGER_ONLY = ("int8", "int8-ptq", "int8-qat")   # the unpruned integer-only variants a pruned int8 one is judged against


def pruning_reference(v: B.Variant, variants: list[B.Variant], loss: Callable[[B.Variant], float]) -> B.Variant | None:
    """The unpruned variant a pruned one is judged against, in the precision that ships: the best unpruned
    integer-only variant for a pruned int8 one, the float one for a pruned float one (None when not pruned)."""
    if "-pruned-" not in v.name:
        return None
    base = v.name.split("-pruned-")[0]
    names = INTEGER_ONLY if base == "int8" else (base,)
    refs = [r for r in variants if r.name in names and r.status is B.VariantStatus.OK]
    return min(refs, key=loss, default=None)


def _budget_marks(variants: list[B.Variant], loss: Callable[[B.Variant], float],
                  budget: float) -> tuple[list[B.Variant], list[str]]:
    """Each validated variant marked within or over the budget (the report shows `over budget`, never `ok`),
    and a note for each one over it. A pruned variant's budget is pruning's own cost: its loss minus that of the
    unpruned variant in the same precision (:func:`pruning_reference`), quantization's loss recorded beside it."""
    out, notes = [], []
    for v in variants:
        if v.status is B.VariantStatus.OK:
            ref = pruning_reference(v, variants, loss)
            if ref is not None:
                cost = loss(v) - loss(ref)
                within = cost <= budget + 1e-12
                v = replace(v, metrics={**v.metrics, "within_budget": within, "pruning_cost": round(cost, 6),
                                        "pruning_reference": ref.name, "reference_loss": round(loss(ref), 6)})
                if not within:
                    notes.append(f"{v.name}: pruning costs {pp(cost)} against {ref.name} (> {pp(budget)}): reported, not chosen")
            else:
                within = loss(v) <= budget + 1e-12
                v = replace(v, metrics={**v.metrics, "within_budget": within})
                if not within:
                    notes.append(f"{v.name} misses the accuracy budget ({pp(loss(v))} > {pp(budget)}): reported, not chosen")
        out.append(v)
    return out, notes


def _previous_report(out: Path, log: Log) -> Report | None:
    """The report of the bundle about to be replaced: its board benchmarks carry over."""
    if not (Path(out) / B.MANIFEST).is_file():
        return None
    try:
        return read_report(out)
    except EdgeError as e:
        log(f"note: the previous report in {out} is unreadable ({e.what}); its board results are not kept")
        return None


TIMING_S = 1.0   # each group's side-by-side timing lasts at least this long (a small model's 12 rounds take ~50 ms)


def _with_latencies(tmp: Path, variants: list[B.Variant], xs: list[np.ndarray], cfg: ConvertConfig, log: Log) -> list[B.Variant]:
    """Time every validated variant side by side, interleaved round by round, so that load on the
    machine hits all of them alike (timing each right after its conversion made the default a coin toss)."""
    measured = [v.name for v in variants if v.status is B.VariantStatus.OK]
    if not measured:
        return variants
    counts = [tfl_threads(cfg)] + ([1] if cfg.threads is None and tfl_threads(cfg) > 1 else [])
    log(f"timing {len(measured)} variant(s) side by side ({', '.join(f'{t} thread(s)' for t in counts)})")
    stats = {}
    for threads in counts:
        models = {name: E.load_tflite(tmp / f"{name}.tflite", threads) for name in measured}
        stats[threads] = {}
        by_order: dict[tuple[int, ...], dict] = {}   # variants whose files order their inputs alike are timed together
        for v in variants:
            if v.name in measured:
                by_order.setdefault(v.input_order, {})[v.name] = models[v.name]
        for order, group in by_order.items():
            stats[threads].update(E.side_by_side(group, [xs[k] for k in order] if order else xs, min_seconds=TIMING_S))
    out = []
    for v in variants:
        if v.name in measured:
            p50, p90 = stats[counts[0]][v.name]
            v = replace(v, metrics={**v.metrics, "latency_ms": round(p50, 4), "latency_p90_ms": round(p90, 4),
                                    "latency_by_threads": {str(t): round(stats[t][v.name][0], 4) for t in counts}})
        out.append(v)
    return out


PRUNED_BASES = ("fp32", "int8")


def _pruned_variants(job: _Job, spec: PruneSpec, log: Log) -> tuple[list[B.Variant], dict[str, Any] | None]:
    """Prune the model (fine-tuned on the labeled calibration images, never the evaluation ones), convert, validate.

    Without a sparsity, channel pruning runs the budgeted search and returns its measured curve too.
    """
    from keras_edge.calibration.dataset import load_labeled

    from ..prune.api import prune_model
    from ..tfenv import captured_output

    cfg, data = job.cfg, job.data
    if data.spec is None:
        raise ConfigError("prune", "needs calibration images: pruning from arrays is not supported by convert",
                          "prune the model with `keras-edge prune` first")
    train = (load_labeled(cfg.calib, data.spec, seed=cfg.seed, labels=data.calib.class_names)
             if data.calib.y is not None else None)
    if train is None or train.y is None:
        raise ConfigError("prune", f"({spec}) fine-tunes the pruned model and needs labeled "
                          "calibration images", "arrange the calibration folder as ROOT/<class>/<image>")
    held_out = set(data.eval.sources)   # built once: the membership test runs per training image
    keep = np.array([s not in held_out for s in train.sources])
    if spec.sparsity is None:
        return _searched_variants(job, train.x[keep], train.y[keep], log)
    log(f"pruning: {spec.method} at {spec.sparsity:.0%}, fine-tuning {cfg.prune_epochs} epoch(s) on "
        f"{int(keep.sum())} labeled images")
    with captured_output(not cfg.verbose):
        res = prune_model(job.model, spec.method, spec.sparsity, train.x[keep], train.y[keep], cfg.prune_epochs,
                          distill=spec.method == "channels", verbose=0)
    info = {"method": str(spec.method), "sparsity": spec.sparsity, "achieved": round(res.achieved, 4),
            "params_before": res.params_before, "params_after": res.params_after,
            "flops_before": res.flops_before, "flops_after": res.flops_after,
            "skipped_layers": [s.to_dict() for s in res.skipped]}
    log(f"pruning: {res.achieved:.1%} removed, params {res.params_before:,} → {res.params_after:,}"
        + (f", FLOPs {res.flops_before:,} → {res.flops_after:,}" if res.flops_before else "")
        + (f"; left unpruned: {', '.join(s.name for s in res.skipped)}" if res.skipped else ""))
    return [job.convert(f"{base}-pruned-{spec.method}", base, res.model, {"pruning": info})
            for base in PRUNED_BASES if base in cfg.variants], None


def _searched_variants(job: _Job, x: np.ndarray, y: np.ndarray, log: Log) -> tuple[list[B.Variant], dict[str, Any]]:
    """The budgeted channel-pruning search on the training images (a fifth held out for its decisions)."""
    from ..prune.search import SearchConfig, search
    from ..tfenv import captured_output

    order = np.random.default_rng(job.cfg.seed).permutation(len(x))
    n_val = max(1, len(x) // 5)
    val, tr = order[:n_val], order[n_val:]
    log(f"pruning: searching for the largest channel pruning within the budget ({len(tr)} training, "
        f"{n_val} validation images; the evaluation images stay unseen)")
    cfg = SearchConfig(max_accuracy_drop=job.cfg.max_accuracy_drop, epochs=max(job.cfg.prune_epochs, 1),
                       threads=job.cfg.threads, board=job.cfg.board)
    with captured_output(not job.cfg.verbose):
        res = search(job.model, x[tr], y[tr], x[val], y[val], cfg)
    curve = res.to_dict()
    for p in (res.base, *res.points):
        twice = f" (the lower of {p.speedups[0]:.2f}x and {p.speedups[1]:.2f}x)" if len(p.speedups) > 1 else ""
        log(f"  pruning level {p.level:.0%}: {p.achieved:.0%} removed, {p.speedup:.2f}x int8{twice}, pruning cost "
            f"{p.drop * 100:+.2f} pp int8 against int8 ({'within' if p.within else 'over'} budget)")
    log(f"pruning: {res.verdict}")
    if res.model is None:
        return [], curve
    info = {"method": "channels", "sparsity": res.chosen.level, "achieved": round(res.chosen.achieved, 4),
            "params_before": res.base.params, "params_after": res.chosen.params, "flops_before": res.base.flops,
            "flops_after": res.chosen.flops, "searched": True}
    return [job.convert(f"{base}-pruned-channels", base, res.model, {"pruning": info})
            for base in PRUNED_BASES if base in job.cfg.variants], curve


def tfl_threads(cfg: ConvertConfig) -> int:
    return cfg.threads or os.cpu_count() or 1


def _check_labels_file(labels: Path | None) -> None:
    if labels is not None and not Path(labels).is_file():
        raise ConfigError("labels", f"{labels}: no such file", "give a text file with one class name per line")


def _check_label_count(labels: Path | None, classes: int) -> None:
    if labels is None:
        return
    names = [ln.strip() for ln in Path(labels).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if len(names) != classes:
        raise ConfigError("labels", f"{labels} has {len(names)} name(s) but the model has {classes} classes",
                          "give one class name per line, in output order")


def _keras_predict(model, x: np.ndarray) -> list[np.ndarray]:
    from ..tfenv import captured_output
    from ..tflite.batching import batch_size

    with captured_output():   # batches bounded by activation memory: 64 digits, a few 224×224 segmentations
        y = model.predict(x, batch_size=batch_size(model), verbose=0)
    ys = y if isinstance(y, (list, tuple)) else [y]
    return [np.asarray(v, np.float32) for v in ys]


def reference_tolerance(ref: dict[str, Any], mode: str, classification: bool, multi_output: bool) -> B.Tolerance:
    """What ``verify`` accepts on the board: twice the error measured here on the reference samples (at least the
    mode's floor), and the agreement measured here less one sample. An agreement of 0 stays 0 (it is not "unknown")."""
    floor = tolerances.floor(mode)
    per_output = tuple(float(max(2 * e["max_abs_err"], floor)) for e in ref.get("per_output", [])) if multi_output else ()
    agreement = ref.get("agreement")
    return B.Tolerance(max_abs=float(max(2 * ref["max_abs_err"], floor)),
                       min_agreement=max(0.0, (1.0 if agreement is None else agreement) - 1 / REFERENCE_SAMPLES)
                       if classification else 1.0,
                       gpu_max_abs=float(max(2 * ref["max_abs_err"], floor) + tolerances.gpu_slack(mode)),
                       output_max_abs=per_output)


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
    return replace(data, eval=data.eval.take(order)), [k[order] for k in keras_out]


def _reference(data: DataSplit, keras_out: list[np.ndarray]) -> dict[str, np.ndarray]:
    ref = {f"input_{i}": x[:REFERENCE_SAMPLES].astype(np.float32) for i, x in enumerate(data.eval.inputs)}
    for i, y in enumerate(keras_out):
        ref[f"output_{i}"] = y[:REFERENCE_SAMPLES].astype(np.float32)
    return ref


def _write_labels(tmp: Path, cfg: ConvertConfig, data: DataSplit) -> str | None:
    if cfg.labels:
        shutil.copyfile(cfg.labels, tmp / "labels.txt")
        return "labels.txt"
    if data.calib.class_names:
        (tmp / "labels.txt").write_text("\n".join(data.calib.class_names) + "\n", encoding="utf-8")
        return "labels.txt"
    return None


def _keras_specs(specs, shapes) -> tuple[B.TensorSpec, ...]:
    return tuple(B.TensorSpec(s.name, (1, *shape), s.dtype) for s, shape in zip(specs, shapes))


def _source_sha(path: Path) -> str:
    if path.is_dir():
        return B.sha256_file(path / "saved_model.pb")
    return B.sha256_file(path)


def _tools() -> dict[str, str]:
    import keras
    import tensorflow as tf
    from importlib.metadata import version


    tools = {"keras-edge": version("keras-edge"), "tensorflow": tf.__version__, "keras": keras.__version__,
             "numpy": np.__version__, "python": platform.python_version()}
    try:
        tools["ai-edge-litert"] = version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - metadata may be missing in odd installs
        pass
    return tools
