"""Pruning in Keras 3: the library API (`prune_model`, `PRUNE_METHODS`) and magnitude pruning.

Magnitude (unstructured) pruning zeroes the smallest kernel weights of Conv, DepthwiseConv and
Dense layers, following a constant or polynomial sparsity schedule while the model fine-tunes.
A mask per kernel is kept as a variable constraint, so the optimizer re-applies it after every
step, and is then stripped: the result is a plain Keras model with zeros in its kernels. Zeros
make the TFLite file compress better; dense CPU kernels run no faster (see benchmarks). Structured
channel pruning, which does make a model compute less, lives in :mod:`.channel_prune`.

Keras is imported inside functions: the CLI takes its choices from the registries here and
`keras-edge prune --help` must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

import numpy as np

from keras_edge.device.errors import DataError, EdgeError, ModelError


class Schedule(StrEnum):
    CONSTANT = "constant"      # the final sparsity from the first step
    POLYNOMIAL = "polynomial"  # 0 → final along a cubic curve over the first 70% of the steps


class Criterion(StrEnum):
    """How channel pruning ranks filters (magnitude pruning always ranks single weights by |w|)."""

    L1 = "l1"
    L2 = "l2"
    BN = "bn"  # |gamma| of the BatchNormalization that follows; L1 where a channel group has none


def check_distill_params(temperature: float, alpha: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise EdgeError(f"temperature {temperature} is not positive", "pass --temperature such as 4")
    if not (0.0 <= alpha <= 1.0):
        raise EdgeError(f"alpha {alpha} is outside [0, 1]", "pass --alpha, the weight of the soft loss, such as 0.5")


@dataclass(frozen=True)
class PruneConfig:
    """How to prune and fine-tune; validated on construction."""

    method: str
    sparsity: float
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    schedule: Schedule = Schedule.POLYNOMIAL
    criterion: Criterion = Criterion.L1
    channel_multiple: int = 8      # channels kept per group round to this (SIMD blocks); 1 = exact
    distill: bool = False          # fine-tune against the unpruned model as teacher
    temperature: float = 4.0
    alpha: float = 0.5
    verbose: int | str = "auto"    # Keras fit verbosity

    def __post_init__(self) -> None:
        if self.method not in PRUNE_METHODS:
            raise EdgeError(f"unknown pruning method {self.method!r}", f"use one of: {', '.join(PRUNE_METHODS)}")
        s = float(self.sparsity)
        if not (math.isfinite(s) and 0.0 < s < 1.0):
            raise EdgeError(f"sparsity {self.sparsity} is outside (0, 1)",
                            "pass the fraction to remove, such as 0.5")
        object.__setattr__(self, "sparsity", s)
        if self.epochs < 0:
            raise EdgeError(f"--epochs {self.epochs} is negative", "pass 0 to prune without fine-tuning")
        if self.batch_size < 1:
            raise EdgeError(f"--batch-size {self.batch_size} is not positive", "pass a batch size such as 32")
        if self.channel_multiple < 1:
            raise EdgeError(f"--channel-multiple {self.channel_multiple} is not positive", "pass 1, 4, 8 or 16")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise EdgeError(f"learning rate {self.learning_rate} is not positive", "pass --lr such as 0.001")
        for name, enum in (("schedule", Schedule), ("criterion", Criterion)):
            try:
                object.__setattr__(self, name, enum(getattr(self, name)))
            except ValueError:
                raise EdgeError(f"unknown {name} {getattr(self, name)!r}",
                                f"use one of: {', '.join(e.value for e in enum)}") from None
        check_distill_params(self.temperature, self.alpha)


@dataclass(frozen=True)
class LayerReport:
    """What pruning did to one layer: channels for channel pruning, weights for magnitude pruning."""

    name: str
    class_name: str
    unit: str                      # "channels" or "weights"
    before: int
    after: int                     # channels kept, or weights left non-zero
    kept: tuple[int, ...] = ()     # indices of the surviving output channels (channel pruning)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.after / self.before if self.before else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.class_name, "unit": self.unit, "before": self.before,
                "after": self.after, "sparsity": round(self.sparsity, 6)}


@dataclass(frozen=True)
class SkippedLayer:
    """A layer left unpruned, and why."""

    name: str
    class_name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "class": self.class_name, "reason": self.reason}


@dataclass(frozen=True)
class PruneResult:
    """A pruned, plain (uncompiled, wrapper-free) Keras model and what was done to it."""

    model: Any
    method: str
    sparsity: float                # requested
    achieved: float                # weights (magnitude) or channels (channels) removed, over the prunable ones
    layers: tuple[LayerReport, ...]
    skipped: tuple[SkippedLayer, ...]
    params_before: int
    params_after: int
    nonzero_before: int
    nonzero_after: int
    flops_before: int | None      # None when the input size is not fixed
    flops_after: int | None
    epochs: int
    accuracy_before: float | None = None   # on validation data, when given
    accuracy_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, JSON-ready."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("model", "layers", "skipped")}
        d["layers"] = [layer.to_dict() for layer in self.layers]
        d["skipped"] = [s.to_dict() for s in self.skipped]
        return d


# ---------------------------------------------------------------- magnitude pruning


def magnitude_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """0/1 mask (w's shape, float32) zeroing exactly round(sparsity·size) weights of smallest |w|."""
    k = int(round(sparsity * w.size))
    mask = np.ones(w.size, np.float32)
    if k > 0:
        mask[np.argsort(np.abs(w).ravel(), kind="stable")[:k]] = 0.0
    return mask.reshape(w.shape)


def sparsity_at(schedule: Schedule, step: int, end_step: int, final: float, power: int = 3) -> float:
    """Target sparsity at training ``step``; reaches ``final`` at ``end_step`` and stays there."""
    if schedule is Schedule.CONSTANT or end_step <= 0 or step >= end_step:
        return final
    return final * (1.0 - (1.0 - step / end_step) ** power)


class _KeepMasked:
    """Variable constraint: Keras applies it after each optimizer update, so pruned weights stay 0."""

    def __init__(self, mask: Any):
        self.mask = mask

    def __call__(self, w: Any) -> Any:
        return w * self.mask


def _magnitude_layers(model: Any) -> tuple[list[Any], list[SkippedLayer]]:
    import keras

    kinds = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
             keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, keras.layers.Dense)
    found, skipped = [], []
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001 - walks nested models too
        if isinstance(layer, keras.Model):
            continue
        if type(layer) in kinds and isinstance(layer.kernel, keras.Variable) and "float" in str(layer.kernel.dtype):
            found.append(layer)
        elif any("kernel" in v.name for v in layer.weights):
            skipped.append(SkippedLayer(layer.name, type(layer).__name__,
                                        "magnitude pruning covers Conv, DepthwiseConv and Dense kernels only"))
    return found, skipped


def _mask_callback(pairs: list[tuple[Any, Any]], schedule: Schedule, final: float, total_steps: int) -> Any:
    import keras

    # leave the last 30% of the steps to recover at the final sparsity
    end = 0 if schedule is Schedule.CONSTANT else max(1, int(total_steps * 0.7))
    every = max(1, end // 10)

    class MagnitudePruning(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            if self.step % every == 0 or self.step == end:
                apply_masks(pairs, sparsity_at(schedule, self.step, end, final))
            self.step += 1

        def on_train_end(self, logs: dict | None = None) -> None:
            apply_masks(pairs, final)

    return MagnitudePruning()


def apply_masks(pairs: list[tuple[Any, Any]], sparsity: float) -> None:
    """Recompute each kernel's mask at ``sparsity`` from the current weights and apply it."""
    for kernel, mask in pairs:
        w = np.asarray(kernel.numpy())
        m = magnitude_mask(w, sparsity)
        mask.assign(m)
        kernel.assign(w * m)


def magnitude_prune(model: Any, x: np.ndarray | None, y: np.ndarray | None, config: PruneConfig) -> PruneResult:
    """Zero the smallest weights of every Conv/DepthwiseConv/Dense kernel, fine-tuning with masks."""
    import keras

    from . import prune_graph as g
    from .distill import fit

    work = g.clone(model)
    layers, skipped = _magnitude_layers(work)
    if not layers:
        raise ModelError(f"model {model.name!r} has no Conv, DepthwiseConv or Dense kernel to prune",
                         "magnitude pruning needs at least one of those layers")
    pairs = []
    for layer in layers:
        mask = keras.Variable(np.ones(layer.kernel.shape, np.float32), trainable=False, name=f"{layer.name}_mask")
        layer.kernel.constraint = _KeepMasked(mask)
        pairs.append((layer.kernel, mask))
    if config.epochs > 0:
        steps = math.ceil(len(x) / config.batch_size) * config.epochs
        fit(work, x, y, epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
            teacher=model if config.distill else None, temperature=config.temperature, alpha=config.alpha,
            callbacks=[_mask_callback(pairs, config.schedule, config.sparsity, steps)], verbose=config.verbose)
    else:
        apply_masks(pairs, config.sparsity)
    for kernel, _ in pairs:
        kernel.constraint = None
    plain = g.clone(work)  # strip: no constraints, no optimizer, no mask variables
    reports = tuple(LayerReport(layer.name, type(layer).__name__, "weights", int(np.prod(layer.kernel.shape)),
                                int(np.count_nonzero(layer.kernel.numpy()))) for layer in layers)
    total = sum(r.before for r in reports)
    return PruneResult(
        model=plain, method=config.method, sparsity=config.sparsity,
        achieved=1.0 - sum(r.after for r in reports) / total, layers=reports, skipped=tuple(skipped),
        params_before=g.count_params(model), params_after=g.count_params(plain),
        nonzero_before=g.count_nonzero(model), nonzero_after=g.count_nonzero(plain),
        flops_before=g.count_flops(model), flops_after=g.count_flops(plain), epochs=config.epochs)


# ---------------------------------------------------------------- the registry and the API


def _channel_prune(model: Any, x: np.ndarray | None, y: np.ndarray | None, config: PruneConfig) -> PruneResult:
    from .channel_prune import channel_prune

    return channel_prune(model, x, y, config)


# name → function(model, x, y, PruneConfig) -> PruneResult; the CLI's --method choices are its keys
PRUNE_METHODS: dict[str, Callable[..., PruneResult]] = {
    "magnitude": magnitude_prune,
    "channels": _channel_prune,
}


def no_labels_error() -> DataError:
    return DataError("fine-tuning needs labeled data and none was given",
                     "pass --data DIR with one subfolder per class, or --epochs 0 to prune without fine-tuning")


def _check_data(model: Any, x: np.ndarray | None, y: np.ndarray | None, epochs: int) -> None:
    if epochs > 0 and (x is None or y is None):
        raise no_labels_error()
    if x is None:
        return
    if y is None or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{len(x)} inputs with {0 if y is None else len(y)} labels",
                        "give one integer label per input")
    want = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if want is None:
        raise ModelError(f"model {model.name!r} has several inputs", "pruning supports single-input image models")
    if len(want) != x.ndim - 1 or any(w is not None and w != d for w, d in zip(want, x.shape[1:])):
        raise DataError(f"inputs of shape {tuple(x.shape[1:])} do not fit the model's input {want}",
                        "preprocess the data to the model's input size")


def prune_with(model: Any, config: PruneConfig, x: np.ndarray | None = None, y: np.ndarray | None = None,
               x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> PruneResult:
    """Prune ``model`` as ``config`` says; with ``x_val``/``y_val`` the result carries both accuracies."""
    _check_data(model, x, y, config.epochs)
    if x is not None:
        from .prune_graph import check_classifier

        check_classifier(model, np.asarray(y))
    result = PRUNE_METHODS[config.method](model, x, y, config)
    if x_val is not None and y_val is not None and len(x_val):
        from .prune_graph import accuracy

        result = dataclasses.replace(result, accuracy_before=accuracy(model, x_val, y_val),
                                     accuracy_after=accuracy(result.model, x_val, y_val))
    return result


def prune_model(model: Any, method: str, sparsity: float, x: np.ndarray | None = None,
                y: np.ndarray | None = None, epochs: int = 2, *, x_val: np.ndarray | None = None,
                y_val: np.ndarray | None = None, **options: Any) -> PruneResult:
    """Prune ``model`` by ``method`` (a PRUNE_METHODS key) and fine-tune it on ``x``/``y`` for ``epochs``.

    ``options`` are the other PruneConfig fields (schedule, criterion, distill, batch_size, ...).
    The input model is left untouched. With ``x_val``/``y_val`` the result carries both accuracies.
    """
    config = PruneConfig(method=method, sparsity=sparsity, epochs=epochs, **options)
    return prune_with(model, config, x, y, x_val, y_val)


def parse_prune_spec(text: str) -> tuple[str, float]:
    """``"channels:0.5"`` → ("channels", 0.5), validated (for convert's ``--prune METHOD:SPARSITY``)."""
    method, sep, value = text.partition(":")
    try:
        sparsity = float(value)
    except ValueError:
        sparsity = math.nan
    if not sep or method not in PRUNE_METHODS or not math.isfinite(sparsity):
        raise EdgeError(f"--prune {text!r} is not METHOD:SPARSITY",
                        f"write e.g. channels:0.5, with METHOD one of: {', '.join(PRUNE_METHODS)}")
    PruneConfig(method=method, sparsity=sparsity)  # the range check and its message
    return method, sparsity


def gzip_size(data: bytes) -> int:
    """Size of ``data`` after gzip -9: what unstructured sparsity buys on disk and over the wire."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
