"""Integer inputs that hold every pixel exactly.

With TensorFlow's ``tf`` normalisation, x = (p − 127.5) / 127.5, the 256 pixel values sit on a grid one step
1/127.5 wide whose points are *half* a step away from zero. An int8/uint8 input tensor has that step but an
integer zero-point, so its grid points are whole steps from zero: every pixel value falls exactly halfway
between two of them, and which one it lands on depends on the order of rounding and adding the zero-point
(``device/preprocess.py:quantize`` rounds first; a bare interpreter fed by hand often adds first). On models
with near-ties that half step moves top-1 agreement by points, and no quantization step after it can win that
back robustly: a gain measured through one rounding order is lost through the other.

The fix moves the half step out of the input and into the first layer, where it is exact in float: the
preprocessing's mean becomes a whole number of pixel steps (127.5 → 127, so x' = x + δ with δ = 0.5/127.5),
and every layer that reads the input directly gets −(its response to a constant δ) in its bias (or in the
moving mean of the batch normalisation it feeds). For a linear layer without padding that is an identity:
model'(x + δ) = model(x) to float rounding; it is checked on the calibration inputs before it is used. Layers
that pad ('same' convolutions) see their zero padding move by δ, which is not an identity, so such models keep
their input as it was (and say so with ``--verbose``).

It applies only where it is exact and helps: one image input, the same mean and std on every channel, a mean
that is not a whole number of pixel steps, calibration pixels that span the full 0–255 range (so the
converter's input scale is one pixel step), and a model that Keras can clone (functional or sequential).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from keras_edge.device.inputs import PreprocessSpec

Log = Callable[[str], None]
TOLERANCE = 1e-4   # max |model'(x+δ) − model(x)| relative to the outputs' largest magnitude


def shifted_mean(spec: PreprocessSpec | None) -> float | None:
    """The mean that puts pixels on an integer input grid, or None when there is nothing to move."""
    if spec is None or spec.baked or len(set(spec.mean)) != 1 or len(set(spec.std)) != 1 or spec.scale <= 0:
        return None
    steps = spec.mean[0] / spec.scale            # the mean in pixel steps
    frac = steps - math.floor(steps)
    if min(frac, 1.0 - frac) < 1e-6:
        return None
    return math.floor(steps) * spec.scale


def _spans_pixels(x: np.ndarray, spec: PreprocessSpec) -> bool:
    """Whether the calibration inputs reach pixel 0 and pixel 255 (the converter's input range is then the pixels')."""
    lo, hi = (0.0 - spec.mean[0]) / spec.std[0], (255.0 * spec.scale - spec.mean[0]) / spec.std[0]
    lo, hi = min(lo, hi), max(lo, hi)
    step = abs(spec.scale / spec.std[0])
    return bool(abs(float(x.min()) - lo) < step / 4 and abs(float(x.max()) - hi) < step / 4)


def _readers(model: Any, tensor: Any) -> list[Any]:
    """The model's layers that take ``tensor`` as an input."""
    return [layer for layer in model.layers
            if any(any(t is tensor for t in node.input_tensors) for node in getattr(layer, "_inbound_nodes", []))]


def _response(layer: Any, delta: float) -> np.ndarray | None:
    """The layer's (bias-free, pre-activation) output for a constant input δ, per output channel; None when the layer
    is not one whose response to a constant is the same at every position (a linear layer without padding)."""
    import keras

    L = keras.layers
    if isinstance(layer, L.Dense):
        return delta * np.asarray(layer.kernel).sum(axis=0)
    if getattr(layer, "padding", None) != "valid":
        return None
    if isinstance(layer, L.SeparableConv2D):
        dw = delta * np.asarray(layer.depthwise_kernel).sum(axis=(0, 1)).reshape(-1)
        return dw @ np.asarray(layer.pointwise_kernel)[0, 0]
    if isinstance(layer, L.DepthwiseConv2D):
        return delta * np.asarray(layer.kernel).sum(axis=(0, 1)).reshape(-1)
    if isinstance(layer, L.Conv2D) and getattr(layer, "data_format", "channels_last") == "channels_last":
        return delta * np.asarray(layer.kernel).sum(axis=(0, 1, 2))
    return None


def _absorb(model: Any, layer: Any, c: np.ndarray) -> bool:
    """Subtract ``c`` from what ``layer`` computes before its activation: its bias, or the moving mean of the one
    batch normalisation that reads it (when it has no bias and no activation)."""
    import keras

    if getattr(layer, "use_bias", False) and getattr(layer, "bias", None) is not None:
        layer.bias.assign(np.asarray(layer.bias) - c.astype(np.float32))
        return True
    if getattr(layer, "activation", None) not in (None, keras.activations.linear):
        return False
    readers = _readers(model, layer.output)
    if len(readers) != 1 or not isinstance(readers[0], keras.layers.BatchNormalization) or readers[0].axis not in (-1, 3):
        return False
    bn = readers[0]
    bn.moving_mean.assign(np.asarray(bn.moving_mean) + c.astype(np.float32))
    return True


def pixel_grid(model: Any, spec: PreprocessSpec | None, calib_x: np.ndarray, log: Log,
               verbose: Log = lambda s: None) -> tuple[Any, PreprocessSpec] | None:
    """(model', spec') whose integer input holds every pixel exactly, or None (the model and spec stay as they are)."""
    mean = shifted_mean(spec)
    if mean is None or calib_x.ndim != 4:
        return None
    if not _spans_pixels(calib_x, spec):
        verbose("note: the input keeps its half-pixel grid: the calibration images do not span pixels 0–255")
        return None
    import keras

    delta = (spec.mean[0] - mean) / spec.std[0]     # x' = (p·scale − mean') / std = x + δ
    try:
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        consumers = _readers(clone, clone.inputs[0])
    except Exception as e:  # noqa: BLE001 - subclassed models cannot be cloned: they keep their input
        verbose(f"note: the input keeps its half-pixel grid: the model cannot be cloned ({type(e).__name__})")
        return None
    responses = [_response(layer, delta) for layer in consumers]
    if not consumers or any(r is None for r in responses):
        names = ", ".join(f"{type(x).__name__} {x.name}" for x, r in zip(consumers, responses) if r is None) or "none"
        verbose(f"note: the input keeps its half-pixel grid: the layers reading it pad or are not linear ({names})")
        return None
    if not all(_absorb(clone, layer, c) for layer, c in zip(consumers, responses)):
        verbose("note: the input keeps its half-pixel grid: a first layer has neither a bias nor a batch norm to absorb it")
        return None
    x = np.asarray(calib_x[:16], np.float32)
    ref = [np.asarray(a) for a in _as_list(model.predict(x, verbose=0))]
    got = [np.asarray(a) for a in _as_list(clone.predict(x + np.float32(delta), verbose=0))]
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, got))
    scale = max(1.0, max(float(np.max(np.abs(a))) for a in ref))
    if not err <= TOLERANCE * scale:
        verbose(f"note: the input keeps its half-pixel grid: the shifted model differs by {err:.2e}")
        return None
    old, new = spec.mean[0] / spec.scale, mean / spec.scale   # in pixel values
    new_spec = replace(spec, mean=(mean,), reason=f"{spec.reason}; mean moved from pixel {old:g} to {new:g} (half a pixel "
                                                 "step, absorbed by the first layer) so integer inputs hold every pixel "
                                                 "exactly")
    log(f"note: integer inputs hold every pixel exactly: the mean moves from pixel {old:g} to {new:g} and the first "
        f"layer{'s' if len(consumers) > 1 else ''} ({', '.join(x.name for x in consumers)}) absorb the half step "
        f"(float outputs equal within {err:.1e})")
    return clone, new_spec


def _as_list(y: Any) -> list[Any]:
    return list(y) if isinstance(y, (list, tuple)) else [y]
