"""Validating a converted variant against the Keras model, through the real interpreter."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from keras_edge.device.bundle import TensorSpec
from keras_edge.device.preprocess import dequantize, quantize

from .tfenv import captured_output


@dataclass(frozen=True)
class VariantMetrics:
    accuracy: float | None
    agreement: float | None
    max_abs_err: float
    mean_abs_err: float
    latency_ms: float
    latency_p90_ms: float
    threads: int
    samples: int
    ref_max_abs_err: float = 0.0
    ref_agreement: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class TFLiteModel:
    """A loaded interpreter with its tensor specs (batch 1)."""

    interpreter: Any
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    _in_idx: list[int] = field(default_factory=list)
    _out_idx: list[int] = field(default_factory=list)

    def run(self, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One sample: float inputs (each with batch dim 1) → dequantized float outputs."""
        it = self.interpreter
        for spec, idx, x in zip(self.inputs, self._in_idx, xs):
            it.set_tensor(idx, quantize(x, spec.dtype, spec.scale, spec.zero_point))
        it.invoke()
        return [dequantize(it.get_tensor(idx), s.scale, s.zero_point) for s, idx in zip(self.outputs, self._out_idx)]


def _specs(details) -> tuple[TensorSpec, ...]:
    out = []
    for d in details:
        scale, zp = d.get("quantization", (0.0, 0))
        shape = d.get("shape_signature", d["shape"])
        out.append(TensorSpec(name=d["name"], shape=tuple(int(s) for s in shape), dtype=np.dtype(d["dtype"]).name,
                              scale=float(scale), zero_point=int(zp)))
    return tuple(out)


def load_tflite(path: str | os.PathLike, threads: int | None = None) -> TFLiteModel:
    """Load a .tflite file with LiteRT on the CPU (XNNPACK), batch 1."""
    from ai_edge_litert.interpreter import Interpreter

    with captured_output():
        it = Interpreter(model_path=str(path), num_threads=threads or os.cpu_count() or 1)
        for d in it.get_input_details():
            if any(s == -1 for s in d.get("shape_signature", [])):
                shape = [1 if s == -1 else int(s) for s in d["shape_signature"]]
                it.resize_tensor_input(d["index"], shape)
        it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    return TFLiteModel(it, _specs(ins), _specs(outs), [d["index"] for d in ins], [d["index"] for d in outs])


def predict(model: TFLiteModel, xs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Run every sample of the input arrays one at a time; returns stacked float outputs."""
    n = len(xs[0])
    outs: list[list[np.ndarray]] = [[] for _ in model.outputs]
    for i in range(n):
        for j, y in enumerate(model.run([x[i:i + 1] for x in xs])):
            outs[j].append(y[0])
    return [np.stack(o) for o in outs]


def latency(model: TFLiteModel, xs: Sequence[np.ndarray], runs: int = 30, warmup: int = 3) -> tuple[float, float]:
    """Median and p90 of ``invoke`` in milliseconds, inputs already set."""
    for spec, idx, x in zip(model.inputs, model._in_idx, xs):
        model.interpreter.set_tensor(idx, quantize(x[:1], spec.dtype, spec.scale, spec.zero_point))
    for _ in range(warmup):
        model.interpreter.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        model.interpreter.invoke()
        times.append(time.perf_counter_ns() - t0)
    arr = np.asarray(times) / 1e6
    return float(np.median(arr)), float(np.percentile(arr, 90))


def side_by_side(models: dict[str, TFLiteModel], xs: Sequence[np.ndarray], rounds: int = 12, per_round: int = 5,
                 warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Median and p90 (ms) of ``invoke`` for several models, interleaved round by round."""
    for m in models.values():
        for spec, idx, x in zip(m.inputs, m._in_idx, xs):
            m.interpreter.set_tensor(idx, quantize(x[:1], spec.dtype, spec.scale, spec.zero_point))
        for _ in range(warmup):
            m.interpreter.invoke()
    times: dict[str, list[int]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, m in models.items():
            invoke = m.interpreter.invoke
            for _ in range(per_round):
                t0 = time.perf_counter_ns()
                invoke()
                times[name].append(time.perf_counter_ns() - t0)
    return {name: (float(np.median(t)) / 1e6, float(np.percentile(t, 90)) / 1e6) for name, t in times.items()}


def top1(y: np.ndarray) -> np.ndarray:
    return y.reshape(len(y), -1).argmax(axis=1)


def compare(variant_out: list[np.ndarray], keras_out: list[np.ndarray], labels: np.ndarray | None,
            classification: bool) -> dict[str, float | None]:
    """Agreement, accuracy and absolute errors of a variant's outputs against Keras's."""
    errs = [np.abs(v.astype(np.float64) - k.astype(np.float64)) for v, k in zip(variant_out, keras_out)]
    res: dict[str, float | None] = {
        "max_abs_err": float(max(e.max() for e in errs)),
        "mean_abs_err": float(np.mean([e.mean() for e in errs])),
        "agreement": None, "accuracy": None,
    }
    if classification:
        pred = top1(variant_out[0])
        res["agreement"] = float(np.mean(pred == top1(keras_out[0])))
        if labels is not None:
            res["accuracy"] = float(np.mean(pred == labels))
    return res


def keras_latency(model, x: np.ndarray, runs: int = 20, warmup: int = 3) -> dict[str, float]:
    """Batch-1 latency of the Keras model as users call it: ``predict`` and a direct eager call."""
    sample = x[:1]
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
