"""Graph rewrites that keep a model's maths and let TFLite's int8 quantizer take every op.

Keras 3's LayerNormalization computes ``x * inv + (-mean * inv + beta)``; the converter keeps the ``NEG`` of
that expression in float (TFLite's int8 quantizer has no NEG), so a full-integer int8 model of anything with
LayerNormalization (ConvNeXt, ViT/attention blocks) failed. ``(x - mean) * inv + beta`` is the same function
without NEG: SUB, MUL and ADD all quantize.
"""

from __future__ import annotations

from typing import Any


def _sub_layer_norm_class():
    import keras
    from keras import ops

    class SubLayerNormalization(keras.layers.LayerNormalization):
        """LayerNormalization as ``(x - mean) * rsqrt(var + eps) * gamma + beta`` (no negation op)."""

        def call(self, inputs):
            x = ops.cast(inputs, "float32")
            axes = self.axis if isinstance(self.axis, (list, tuple)) else [self.axis]
            mean, variance = ops.moments(x, axes=axes, keepdims=True)
            inv = ops.rsqrt(variance + self.epsilon)
            shape = [1] * len(x.shape)
            for a in axes:
                shape[a] = x.shape[a]
            if self.gamma is not None:
                inv = inv * ops.reshape(self.gamma, shape)
            out = (x - mean) * inv
            if self.beta is not None:
                out = out + ops.reshape(self.beta, shape)
            return ops.cast(out, self.compute_dtype)

    return SubLayerNormalization


def has_layer_norm(model: Any) -> bool:
    import keras

    return any(isinstance(layer, keras.layers.LayerNormalization) and not layer.rms_scaling
               for layer in getattr(model, "layers", []))


def int8_friendly(model: Any) -> Any:
    """``model`` with each LayerNormalization computed without NEG (same weights); the model itself when there
    is nothing to rewrite or it cannot be cloned (subclassed models)."""
    import keras

    if not has_layer_norm(model):
        return model
    cls = _sub_layer_norm_class()

    def clone(layer):
        if isinstance(layer, keras.layers.LayerNormalization) and not layer.rms_scaling:
            new = cls.from_config(layer.get_config())
            return new
        return layer.__class__.from_config(layer.get_config())

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - a model clone_model cannot rebuild is converted as it is
        return model
    return copy
