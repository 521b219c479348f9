"""Magnitude (unstructured) pruning in Keras 3.

It zeroes the smallest kernel weights of Conv, DepthwiseConv and Dense layers, following a constant
or polynomial sparsity schedule while the model fine-tunes. A mask per kernel is kept as a variable
constraint, so the optimizer re-applies it after every step, and is then stripped: the result is a
plain Keras model with zeros in its kernels. Zeros make the TFLite file compress better; dense CPU
kernels run no faster (see benchmarks). Structured pruning, which makes a model compute less, is
:mod:`.channels`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from keras_edge.device.contract import ModelError

from .base import LayerReport, PruneConfig, PruneResult, Schedule, SkippedLayer



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

    from . import graph as g
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
