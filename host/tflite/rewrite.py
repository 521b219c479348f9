"""Float-exact graph rewrites that let TensorFlow's converter quantize a model fully to int8.

Keras 3 computes LayerNormalization as ``x * inv + (-mean * inv + beta)``; the converter has no int8
kernel for that ``-mean`` (NEG) and silently leaves it in float, so LayerNorm, ConvNeXt and
transformer blocks never become integer-only. The same function written as
``(x - mean) * rsqrt(var + eps) * gamma + beta`` lowers to SUB, MEAN, MUL, RSQRT and ADD, which all
have int8 kernels, and is better conditioned in int8 too (it subtracts before it scales).

:func:`integer_friendly` swaps every such layer of a functional model (nested functional models
included) for the rewritten one on a copy that shares the other layers, and checks the copy against
the original in float. Each rewrite is a registry entry: a layer class name → a function building
the replacement layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

MAX_FLOAT_CHANGE = 1e-4   # relative to the outputs' range: the rewrite must not change the float model


@dataclass(frozen=True)
class RewriteResult:
    model: Any
    applied: dict[str, int] = field(default_factory=dict)   # layer class → how many were rewritten
    float_change: float = 0.0                                # max |Δ| of the outputs in float, relative to their range
    why: str = ""                                             # why nothing was rewritten

    @property
    def text(self) -> str:
        return ", ".join(f"{n} {k}" for k, n in self.applied.items())


@lru_cache(maxsize=1)
def _layer_norm_class():
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="keras_edge")
    class IntegerLayerNormalization(keras.layers.LayerNormalization):
        """LayerNormalization as (x − mean) · rsqrt(var + ε) · γ + β: no NEG, so int8 end to end."""

        def call(self, inputs):
            axis = self.axis
            x = ops.cast(inputs, "float32")
            mean = ops.mean(x, axis=axis, keepdims=True)
            centered = ops.subtract(x, mean)
            var = ops.mean(ops.square(centered), axis=axis, keepdims=True)
            out = ops.multiply(centered, ops.rsqrt(ops.add(var, self.epsilon)))
            shape = [1] * len(inputs.shape)
            for a in (axis if isinstance(axis, (list, tuple)) else [axis]):
                shape[a] = inputs.shape[a]
            if self.scale:
                out = ops.multiply(out, ops.reshape(self.gamma, shape))
            if self.center:
                out = ops.add(out, ops.reshape(self.beta, shape))
            return ops.cast(out, self.compute_dtype)

    return IntegerLayerNormalization


def _layer_norm(layer) -> Any | None:
    if getattr(layer, "rms_scaling", False):   # no mean to subtract: no NEG either
        return None
    cls = _layer_norm_class()
    config = layer.get_config()
    config["name"] = layer.name   # the copy keeps the name: reports and denylists stay readable
    new = cls.from_config(config)
    new.build_from_config(layer.get_build_config())
    new.set_weights(layer.get_weights())
    return new


# layer class name → builder of an equivalent layer the converter quantizes to int8 (None: leave it)
REWRITES: dict[str, Callable[[Any], Any | None]] = {
    "LayerNormalization": _layer_norm,
}


def _rewritable(model) -> dict[str, int]:
    import keras

    found: dict[str, int] = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            for k, n in _rewritable(layer).items():
                found[k] = found.get(k, 0) + n
        elif type(layer).__name__ in REWRITES:
            found[type(layer).__name__] = found.get(type(layer).__name__, 0) + 1
    return found


def integer_friendly(model, x: np.ndarray | None = None) -> RewriteResult:
    """A copy of ``model`` with every layer in :data:`REWRITES` replaced (other layers shared); checked in
    float on ``x`` (a few inputs) when given. ``applied`` is empty, with ``why``, when nothing was rewritten."""
    import keras

    if not _rewritable(model):
        return RewriteResult(model, why="no layer the converter leaves in float has a known rewrite")
    applied: dict[str, int] = {}

    def swap(layer):
        name = type(layer).__name__
        new = REWRITES[name](layer) if name in REWRITES else None
        if new is None:
            return layer
        applied[name] = applied.get(name, 0) + 1
        return new

    try:
        copy = keras.models.clone_model(model, clone_function=swap, recursive=True)
    except Exception as e:  # noqa: BLE001 - subclassed or unusual graphs cannot be cloned layer by layer
        return RewriteResult(model, why=f"the model cannot be cloned layer by layer ({type(e).__name__}: "
                                        f"{str(e).splitlines()[0][:160] if str(e) else ''})")
    if not applied:
        return RewriteResult(model, why="no layer could be rewritten")
    change = 0.0
    if x is not None and len(x):
        ref = _outputs(model, x)
        new = _outputs(copy, x)
        for a, b in zip(ref, new):
            span = max(float(np.ptp(a)), float(np.abs(a).max()), 1e-12)
            change = max(change, float(np.max(np.abs(a - b))) / span)
        if change > MAX_FLOAT_CHANGE:
            return RewriteResult(model, float_change=change,
                                 why=f"the rewritten model's float outputs differ by {change:.1e} of their range")
    return RewriteResult(copy, applied, change)


def _outputs(model, x: np.ndarray) -> list[np.ndarray]:
    y = model(x, training=False)
    return [np.asarray(v, np.float64) for v in (y if isinstance(y, (list, tuple)) else [y])]
