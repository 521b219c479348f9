"""Quantization-aware fine-tuning in Keras 3 (no tensorflow-model-optimization, which is Keras 2 only).

The model is fine-tuned while it computes the way the int8 model will:

- weights fake-quantized to int8, symmetric, per output channel (what TFLite does), with a
  straight-through estimator: the forward pass runs on the rounded weights and the gradient
  updates the float ones;
- batch norm frozen (inference mode, moving statistics): the network behaves as with BN folded
  into the convolution. Per-channel symmetric rounding of ``W·γ/σ`` equals that of ``W`` scaled, so
  rounding the unfolded kernel is exact;
- activations fake-quantized per tensor (uint8 grid over the calibration min/max) wherever TFLite
  keeps an int8 tensor: the output of every layer that is not folded into its consumer (a conv
  feeding BN, BN feeding a ReLU), and the depthwise → pointwise tensor inside SeparableConv2D.

The loss is KL against the float model's probabilities (the float model is the teacher), plus
cross-entropy when labels exist. The result is a plain float Keras model, converted by the same
int8 recipe as every other variant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..tflite.ptq import BATCH, _graph, _kind, clone, functional


@dataclass(frozen=True)
class QatResult:
    model: Any
    applied: bool
    detail: dict[str, Any] = field(default_factory=dict)


def _folded_into_consumer(layer, g) -> bool:
    """TFLite fuses a conv's output into the BN after it, and BN or a conv into the ReLU after it."""
    from keras import layers as L

    cons = g.consumers.get(id(layer.output), [])
    if len(cons) != 1:
        return False
    c = cons[0]
    if isinstance(c, L.BatchNormalization):
        return _kind(layer) in ("conv", "depthwise", "separable", "dense")
    return isinstance(c, (L.ReLU, L.Activation)) and _kind(layer) in ("conv", "depthwise", "separable", "dense", "bn")


def _fq(x, lo, hi):
    """x → the uint8 grid over [lo, hi] (zero included, as TFLite's); the gradient passes straight through."""
    import keras

    ops = keras.ops
    lo, hi = ops.minimum(lo, 0.0), ops.maximum(hi, 0.0)
    scale = ops.maximum(hi - lo, 1e-8) / 255.0
    inside = ops.clip(x, lo, hi)   # no gradient past the range: the network cannot lean on clipping
    q = ops.round((inside - lo) / scale) * scale + lo
    return inside + ops.stop_gradient(q - inside)


def _layers():
    import keras
    from keras import layers as L

    class FakeQuant(L.Layer):
        def __init__(self, lo: float, hi: float, **kw):
            super().__init__(**kw)
            self.lo = self.add_weight(shape=(), initializer=keras.initializers.Constant(lo), trainable=False, name="lo")
            self.hi = self.add_weight(shape=(), initializer=keras.initializers.Constant(hi), trainable=False, name="hi")

        def call(self, x):
            return _fq(x, self.lo, self.hi)

    class SeparableFakeQuant(L.Layer):
        """A SeparableConv2D (its own variables) with the depthwise → pointwise tensor fake-quantized."""

        def __init__(self, inner, lo: float, hi: float, **kw):
            super().__init__(**kw)
            self.inner = inner
            self.lo = self.add_weight(shape=(), initializer=keras.initializers.Constant(lo), trainable=False, name="lo")
            self.hi = self.add_weight(shape=(), initializer=keras.initializers.Constant(hi), trainable=False, name="hi")

        def call(self, x):
            ops, c = keras.ops, self.inner
            h = ops.depthwise_conv(x, c.depthwise_kernel, strides=c.strides, padding=c.padding,
                                   dilation_rate=c.dilation_rate)
            y = ops.conv(_fq(h, self.lo, self.hi), c.pointwise_kernel, strides=1, padding="valid")
            if c.use_bias:
                y = y + c.bias
            return c.activation(y) if c.activation is not None else y

    return FakeQuant, SeparableFakeQuant


def _quantized_tensors(model) -> list[Any]:
    """Layers whose output TFLite keeps as an int8 tensor (one call each)."""
    from keras import layers as L

    g = _graph(model)
    return [layer for layer in model.layers if not isinstance(layer, L.InputLayer)
            and len(getattr(layer, "_inbound_nodes", [])) == 1 and not _folded_into_consumer(layer, g)]


def _range_probe(model, chosen: list[Any]):
    """A model returning each chosen layer's output and each SeparableConv2D's input (built before the
    layers are called again, while each has one node)."""
    import keras
    from keras import layers as L

    seps = [layer for layer in model.layers if isinstance(layer, L.SeparableConv2D)]
    probe = keras.Model(model.inputs, [layer.output for layer in chosen] + [layer.input for layer in seps])
    return probe, [layer.name for layer in chosen], seps


def _ranges(probe, names: list[str], seps: list[Any], x: np.ndarray):
    """(min, max) of each chosen layer's output, and of the depthwise output inside each SeparableConv2D."""
    import keras

    lo = {n: np.inf for n in names + [s.name for s in seps]}
    hi = {n: -np.inf for n in lo}
    for i in range(0, len(x), BATCH):
        ys = probe([x[i:i + BATCH]], training=False)
        ys = list(ys) if isinstance(ys, (list, tuple)) else [ys]
        outs, ins = ys[:len(names)], ys[len(names):]
        for n, y in zip(names, outs):
            y = np.asarray(y)
            lo[n], hi[n] = min(lo[n], float(y.min())), max(hi[n], float(y.max()))
        for layer, xs in zip(seps, ins):
            h = np.asarray(keras.ops.depthwise_conv(xs, layer.depthwise_kernel, strides=layer.strides,
                                                    padding=layer.padding, dilation_rate=layer.dilation_rate))
            lo[layer.name], hi[layer.name] = min(lo[layer.name], float(h.min())), max(hi[layer.name], float(h.max()))
    return ({n: (lo[n], hi[n]) for n in names}, {s.name: (lo[s.name], hi[s.name]) for s in seps})


def _with_fake_quant(model, ranges: dict[str, tuple[float, float]], inner: dict[str, tuple[float, float]]):
    """The functional graph again, calling the same layers (shared weights) with fake quantizers added."""
    import keras

    from ..tflite.ptq import _nodes

    FakeQuant, SeparableFakeQuant = _layers()
    tensors: dict[int, Any] = {}
    inputs = [keras.Input(shape=t.shape[1:], dtype=t.dtype) for t in model.inputs]
    for t, new in zip(model.inputs, inputs):
        tensors[id(t)] = new
    for node in _nodes(model):
        if node.is_input:
            continue
        layer = node.operation
        args = [tensors[id(t)] for t in node.input_tensors]
        call = SeparableFakeQuant(layer, *inner[layer.name], name=f"fqs_{layer.name}") if layer.name in inner else layer
        y = call(args[0] if len(args) == 1 else args)
        if layer.name in ranges:
            y = FakeQuant(*ranges[layer.name], name=f"fq_{layer.name}")(y)
        tensors[id(node.outputs[0])] = y
    return keras.Model(inputs, [tensors[id(t)] for t in model.outputs])


LR = 2e-5
PATIENCE = 3          # epochs without a better held-out loss before the fine-tuning stops
HOLDOUT = 0.2         # of the calibration images, kept out of training to pick the best epoch
MIN_HOLDOUT = 16


def _tf_fake_quant(v, axis_last: int):
    """TensorFlow twin of :func:`.ptq._fake_quant`: symmetric int8 per channel (the ``axis_last`` trailing axes)."""
    import tensorflow as tf

    axes = list(range(len(v.shape) - axis_last))
    scale = tf.maximum(tf.reduce_max(tf.abs(v), axis=axes, keepdims=True), 1e-12) / 127.0
    return tf.clip_by_value(tf.round(v / scale), -127.0, 127.0) * scale


def _kernel_vars(layer) -> list[tuple[Any, int]]:
    """The layer's kernels with the trailing axes that name a channel (as :func:`.ptq._quantized_weights`)."""
    kernels = [v for v in layer.trainable_weights if "bias" not in v.path]
    axes = {"separable": (2, 1), "depthwise": (2,)}.get(_kind(layer), (1,))
    return list(zip(kernels, axes))


def qat_finetune(model, x: np.ndarray, y: np.ndarray | None = None, epochs: int = 3, lr: float = LR,
                 seed: int = 0, log: Callable[[str], None] = lambda s: None,
                 time_limit: float | None = None) -> QatResult:
    """Fine-tune a copy of ``model`` with int8 weights and activations simulated; the teacher is ``model``.

    A fifth of the images (when there are enough) is held out: the simulated int8 loss there picks the best epoch
    (epoch 0 is the model as given) and stops the fine-tuning after PATIENCE epochs without a better one. When no
    epoch beats the model as given, nothing is applied. ``epochs`` is a ceiling; ``time_limit`` (seconds from the
    call) stops it after the epoch that crosses the limit."""
    import time

    import keras
    import tensorflow as tf

    t_start = time.perf_counter()
    if not functional(model):
        return QatResult(model, False, {"why": "needs a functional or Sequential model without nested models"})
    student = clone(model)
    probe, names, seps = _range_probe(student, _quantized_tensors(student))
    ranges, inner = _ranges(probe, names, seps, x)
    trainer = _with_fake_quant(student, ranges, inner)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_hold = int(len(x) * HOLDOUT) if len(x) * HOLDOUT >= MIN_HOLDOUT else 0
    teacher = np.concatenate([np.asarray(model([x[i:i + BATCH]], training=False)) for i in range(0, len(x), BATCH)])
    probs = teacher.ndim == 2 and np.allclose(teacher.sum(axis=1), 1.0, atol=1e-3)
    hold, fit = order[:n_hold], order[n_hold:]
    qvars = [kv for layer in student.layers if _kind(layer) in ("conv", "depthwise", "separable", "dense")
             for kv in _kernel_vars(layer)]
    weights = trainer.trainable_weights
    opt = keras.optimizers.Adam(lr)
    use_labels = y is not None and probs

    def loss_of(out, tb, yb):
        if probs:
            loss = tf.reduce_mean(keras.losses.kl_divergence(tb, out))
            return loss + tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(yb, out)) if use_labels else loss
        return tf.reduce_mean(tf.square(out - tb))

    @tf.function
    def step(xb, tb, yb):
        saved = [tf.identity(v) for v, _ in qvars]
        for v, a in qvars:
            v.assign(_tf_fake_quant(v, a))   # forward on the int8 grid …
        with tf.GradientTape() as tape:
            loss = loss_of(trainer(xb, training=False), tb, yb)   # BN frozen: moving statistics, as folded
        grads = tape.gradient(loss, weights)
        for (v, _), f in zip(qvars, saved):
            v.assign(f)    # … and the update on the float weights (straight-through)
        opt.apply_gradients([(g, w) for g, w in zip(grads, weights) if g is not None])
        return loss

    @tf.function
    def simulated(xb, tb, yb):
        saved = [tf.identity(v) for v, _ in qvars]
        for v, a in qvars:
            v.assign(_tf_fake_quant(v, a))
        loss = loss_of(trainer(xb, training=False), tb, yb)
        for (v, _), f in zip(qvars, saved):
            v.assign(f)
        return loss

    def held_out() -> float | None:
        if not n_hold:
            return None
        total = 0.0
        for i in range(0, n_hold, BATCH):
            idx = hold[i:i + BATCH]
            yb = tf.constant(y[idx] if use_labels else np.zeros(len(idx), np.int64))
            total += float(simulated(tf.constant(x[idx]), tf.constant(teacher[idx]), yb)) * len(idx)
        return total / n_hold

    history, held = [], [held_out()]
    best, best_epoch = student.get_weights(), 0
    stopped = f"{epochs} epoch(s)"
    quantizers = [layer for layer in trainer.layers if layer.name.startswith(("fq_", "fqs_"))]
    for epoch in range(epochs):
        if time_limit is not None and time.perf_counter() - t_start > time_limit:
            stopped = f"time limit {time_limit:g}s after {epoch} epoch(s)"
            break
        if epoch:   # the converter calibrates min/max on the fine-tuned model: follow it
            ranges, inner = _ranges(probe, names, seps, x)
            for fq in quantizers:
                name = fq.name.split("_", 1)[1]
                lo, hi = (inner if fq.name.startswith("fqs_") else ranges)[name]
                fq.lo.assign(lo)
                fq.hi.assign(hi)
        perm = fit[rng.permutation(len(fit))]
        total = 0.0
        for i in range(0, len(perm), BATCH):
            idx = perm[i:i + BATCH]
            yb = tf.constant(y[idx] if use_labels else np.zeros(len(idx), np.int64))
            total += float(step(tf.constant(x[idx]), tf.constant(teacher[idx]), yb)) * len(idx)
        history.append(total / len(perm))
        held.append(held_out())
        log(f"  int8-qat: epoch {epoch + 1}/{epochs}: loss {history[-1]:.4g}"
            + (f", held-out {held[-1]:.4g}" if held[-1] is not None else "") + f" ({time.perf_counter() - t_start:.0f}s)")
        if held[-1] is None or held[-1] < held[best_epoch]:
            best, best_epoch = student.get_weights(), epoch + 1
        elif epoch + 1 - best_epoch >= PATIENCE:
            stopped = f"no better held-out loss in {PATIENCE} epochs (after {epoch + 1})"
            break
    detail = {"epochs": len(history), "max_epochs": epochs, "lr": lr, "samples": len(fit), "held_out": int(n_hold),
              "labels": use_labels, "fake_quantized_tensors": len(ranges) + len(inner), "stopped": stopped,
              "time_limit": time_limit, "best_epoch": best_epoch, "seconds": round(time.perf_counter() - t_start, 1),
              "loss_by_epoch": [round(h, 6) for h in history],
              "held_out_by_epoch": [round(h, 6) for h in held if h is not None]}
    if not history:
        return QatResult(model, False, {**detail, "why": f"the time limit ({time_limit:g}s) ran out before the first "
                                                         f"epoch (setup took {detail['seconds']:g}s)"})
    if best_epoch == 0 and n_hold:
        return QatResult(model, False, {**detail, "why": f"no epoch lowered the simulated int8 loss on {n_hold} held-out "
                                                         "calibration images: the model is left as it was"})
    student.set_weights(best)
    return QatResult(student, True, detail)
