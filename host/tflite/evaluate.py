"""Validating a converted variant against the Keras model, through the board's own engine."""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

import numpy as np

from keras_edge.device.contract import bundle as B
from keras_edge.device.engine import Engine, EngineOptions
from keras_edge.device.engine import load as load_engine
from keras_edge.device.inputs import dequantize, quantize

from ..tfenv import captured_output


def load_tflite(path: str | os.PathLike, threads: int | None = None) -> Engine:
    """Load a .tflite file with the board's own engine (LiteRT on the CPU, XNNPACK), batch 1 (no trial run: the
    converter made it here, a moment ago)."""
    return load_engine(path, EngineOptions(threads=threads, trial=False))


RUNNER, BARE = "runner", "bare"   # the input paths a variant is measured through (see quantize_bare)


def quantize_bare(x: np.ndarray, dtype: np.dtype | str, scale: float, zero_point: int) -> np.ndarray:
    """The other rounding order: the zero-point added before rounding, as a bare interpreter fed by hand
    (``round(x / scale + zero_point)``) does. The runner (:func:`quantize`) rounds first; with an odd zero-point
    and a half-integer ``x / scale`` the two land one step apart. An equivalent input path: a fidelity gain that
    does not hold through both is not a gain."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" or scale == 0.0:
        return quantize(x, dtype, scale, zero_point)
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / np.float32(scale) + np.float32(zero_point)), info.min, info.max).astype(dtype)


def integer_inputs(model: Engine) -> bool:
    """Whether any input is quantized (so the rounding order matters)."""
    return any(np.dtype(s.dtype).kind != "f" and s.scale != 0.0 for s in model.inputs)


def run_one(model: Engine, xs: Sequence[np.ndarray], path: str = RUNNER) -> list[np.ndarray]:
    """One sample: float inputs (each with batch dim 1) → dequantized float outputs (``path``: the runner's
    rounding order, or the bare one)."""
    q = quantize_bare if path == BARE else quantize
    for i, (spec, x) in enumerate(zip(model.inputs, xs)):
        model.set_input(i, q(x, spec.dtype, spec.scale, spec.zero_point))
    model.invoke()
    return [dequantize(model.output(i), s.scale, s.zero_point) for i, s in enumerate(model.outputs)]


def _set_first(model: Engine, xs: Sequence[np.ndarray]) -> None:
    for i, (spec, x) in enumerate(zip(model.inputs, xs)):
        model.set_input(i, quantize(x[:1], spec.dtype, spec.scale, spec.zero_point))


def predict(model: Engine, xs: Sequence[np.ndarray], path: str = RUNNER) -> list[np.ndarray]:
    """Run every sample of the input arrays one at a time; returns stacked float outputs."""
    n = len(xs[0])
    outs: list[list[np.ndarray]] = [[] for _ in model.outputs]
    for i in range(n):
        for j, y in enumerate(run_one(model, [x[i:i + 1] for x in xs], path)):
            outs[j].append(y[0])
    return [np.stack(o) for o in outs]


TIMING_INVOKES = 3 + 12 * 5   # what side_by_side runs by default per model and thread count (warm-up included)


def side_by_side(models: dict[str, Engine], xs: Sequence[np.ndarray], rounds: int = 12, per_round: int = 5,
                 warmup: int = 3, min_seconds: float = 0.0) -> dict[str, tuple[float, float]]:
    """Median and p90 (ms) of ``invoke`` for several models, interleaved round by round: ``rounds`` at least, and
    more until ``min_seconds`` have passed (a sub-millisecond model's 12 rounds last a few tens of milliseconds,
    short enough for one burst of other work on the machine to cover the whole measurement)."""
    for m in models.values():
        _set_first(m, xs)
        for _ in range(warmup):
            m.invoke()
    times: dict[str, list[int]] = {name: [] for name in models}
    t_end = time.perf_counter() + min_seconds
    done = 0
    while done < rounds or time.perf_counter() < t_end:
        done += 1
        for name, m in models.items():
            invoke = m.invoke
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                invoke()
                times[name].append(time.perf_counter_ns() - t0)
    return {name: (float(np.median(t)) / 1e6, float(np.percentile(t, 90)) / 1e6) for name, t in times.items()}


def top1(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1).argmax(axis=1)


def compare(variant_out: list[np.ndarray], keras_out: list[np.ndarray], labels: np.ndarray | None,
            classification: bool) -> dict[str, Any]:
    """Agreement, accuracy (each with a 95% Wilson interval), continuous fidelity (KL, cosine, SNR) and
    absolute errors of a variant's outputs against Keras's."""
    from .fidelity import output_fidelity, paired_drop_interval, wilson

    # per output (max, mean) of |variant − Keras|, one sample at a time (float64 copies of every map would be GBs)
    errs = [_abs_err(v, k) for v, k in zip(variant_out, keras_out)]
    n = len(keras_out[0])
    res: dict[str, Any] = {
        "max_abs_err": float(max(e[0] for e in errs)),
        "mean_abs_err": float(np.mean([e[1] for e in errs])),
        "agreement": None, "accuracy": None, "n": n,
    }
    if classification:
        pred, kpred = top1(variant_out[0]), top1(keras_out[0])
        agree = int(np.sum(pred == kpred))
        res["agreement"] = agree / n
        res["agreement_ci"] = [round(v, 6) for v in wilson(agree, n)]
        if labels is not None:
            right = pred == labels
            res["accuracy"] = float(np.mean(right))
            res["accuracy_ci"] = [round(v, 6) for v in wilson(int(right.sum()), n)]
            res["accuracy_drop_ci"] = [round(v, 6) for v in paired_drop_interval(kpred == labels, right)]
    fid = output_fidelity(variant_out, keras_out, classification)
    res.update({k: v for k, v in fid.items() if k != "outputs"})
    if len(fid["outputs"]) > 1:   # each output on its own: its largest error beside its cosine and SNR
        res["per_output"] = [{**entry, "max_abs_err": float(e[0])} for entry, e in zip(fid["outputs"], errs)]
    return res


BARE_KEYS = ("agreement", "agreement_ci", "accuracy", "accuracy_ci", "accuracy_drop_ci", "kl")


def compare_bare(model: Engine, xs: Sequence[np.ndarray], keras_out: list[np.ndarray], labels: np.ndarray | None,
                 classification: bool) -> dict[str, Any]:
    """A single-input, single-output variant with a quantized input measured through the other rounding order
    (:func:`quantize_bare`) as ``<key>_bare`` metrics; {} when the order cannot matter. The decisions
    (:func:`keras_edge.host.convert.choose.loss_of`, :func:`.fidelity.fidelity_loss`) take the worse path."""
    if len(xs) != 1 or len(keras_out) != 1 or not integer_inputs(model):
        return {}
    m = compare(predict(model, xs, BARE), keras_out, labels, classification)
    return {f"{k}_bare": m[k] for k in BARE_KEYS if m.get(k) is not None}


def _abs_err(variant: np.ndarray, keras: np.ndarray) -> tuple[float, float]:
    top, total = 0.0, 0.0
    for v, k in zip(variant, keras):
        e = np.abs(v.astype(np.float64) - k.astype(np.float64))
        top, total = max(top, float(e.max()) if e.size else 0.0), total + float(e.sum())
    return top, total / max(keras.size, 1)


def keras_latency(model, x: np.ndarray | list[np.ndarray], runs: int = 20, warmup: int = 3) -> dict[str, float]:
    """Batch-1 latency of the Keras model as users call it: ``predict`` and a direct eager call."""
    sample = [a[:1] for a in x] if isinstance(x, (list, tuple)) else x[:1]   # a list: one array per input
    out: dict[str, float] = {}
    with captured_output():
        for label, fn in (("predict_ms", lambda: model.predict(sample, verbose=0)),
                          ("call_ms", lambda: model(sample, training=False))):
            for _ in range(warmup):
                fn()
            times = []
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                fn()
                times.append(time.perf_counter_ns() - t0)
            out[label] = round(float(np.median(times)) / 1e6, 4)
    return out


def summary(v: B.Variant) -> str:
    """One log line for a converted variant."""
    m = v.metrics
    if v.status is B.VariantStatus.CONVERSION_FAILED:
        return f"FAILED to convert: {v.reason}"
    parts = [f"{v.bytes / 1024:.1f} KiB"]
    if m.get("accuracy") is not None:
        parts.append(f"acc {m['accuracy']:.4f}")
    if m.get("agreement") is not None:
        parts.append(f"agree {m['agreement']:.4f}")
        if m.get("agreement_bare") is not None:
            parts.append(f"agree {m['agreement_bare']:.4f} by the other rounding order")
    if m.get("map50_95") is not None:
        parts.append(f"mAP@0.5 {m['map50']:.4f}, mAP@0.5:0.95 {m['map50_95']:.4f}")
    if m.get("miou") is not None:
        parts.append(f"mIoU {m['miou']:.4f}")
    if m.get("task_fidelity") is not None:
        parts.append(f"fidelity {m['task_fidelity']:.4f}")
    if m.get("rel_err") is not None and m.get("agreement") is None and m.get("task_metric") is None:
        parts.append(f"rel err {m['rel_err']:.2%}" + (f", SNR {m['snr_db']:.1f} dB" if m.get("snr_db") is not None else ""))
    if m.get("map_f1") is not None:
        parts.append(f"map F1 {m['map_f1']:.3f}, IoU {m['map_iou']:.3f}")
    if "latency_ms" in m:
        parts.append(f"{m['latency_ms']:.3f} ms")
    parts.append(f"converted in {m.get('convert_s', 0):.1f}s")
    head = "ok" if v.status is B.VariantStatus.OK else f"VALIDATION FAILED ({v.reason})"
    return f"{head}: " + ", ".join(parts)
