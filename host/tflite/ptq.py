"""Post-training quantization steps on the Keras model, each verified in float before conversion.

- Cross-layer equalization (Nagel et al., "Data-Free Quantization", 2019), adapted to TFLite: weights
  are quantized per output channel, activations per tensor. A channel whose activation range is far
  wider than its neighbours' takes the tensor's whole int8 range; scaling it down by ``s`` and the
  consumer's matching input weights up by ``s`` leaves the float function unchanged. Pairs are a
  producer (Conv2D, DepthwiseConv2D, BatchNormalization) → [ReLU/ReLU6, pooling] → consumers (Conv2D,
  DepthwiseConv2D, SeparableConv2D, Dense), and the depthwise → pointwise pair inside SeparableConv2D.
  Residual streams (branch producers → Add → pooling → consumers, as in Xception-style blocks) take one
  channel scale for every tensor in them. Two settings are tried, balanced with the consumer's weights
  (Nagel's sqrt, pairs only) and activations first (every channel to the widest, streams too), and convert
  keeps the closer file.
  BN is not folded in Keras: scaling its gamma and beta is the same as scaling the folded weights.
  Ranges are measured on the calibration images. ReLU6 only commutes with scaling where it does not
  clip, so a channel that reaches 6 keeps its scale.
- Range setting beyond min/max: TensorFlow's converter calibrates every activation on its min/max,
  so one outlier sets the step for all values. A ReLU's upper clip at the 99.99th percentile of its
  calibration values makes the converter's min/max that percentile (the way ReLU6 bounds ranges).
  TensorFlow's converter turns a cap other than 6 into extra ops (measured ~5x slower on XNNPACK),
  so the convert flow drops any step whose graph has ops plain int8's has not.
- Bias correction (empirical): the expected shift that int8 weight rounding adds to each layer's
  output, measured on the calibration images, is subtracted through the bias (or BN's moving mean).

Each step returns a new model and what it did; a step that changes the float model's answers, or
does not bring the weight-quantized model closer to float, is not applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

BATCH = 32
S_MIN, S_MAX = 1e-3, 1e3


@dataclass(frozen=True)
class StepResult:
    model: Any
    applied: bool
    detail: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- the layer graph

def _nodes(model) -> list[Any]:
    by_depth = model._nodes_by_depth  # noqa: SLF001 - Keras 3 has no public graph walk
    return [n for d in sorted(by_depth, reverse=True) for n in by_depth[d]]


def functional(model) -> bool:
    import keras

    if isinstance(model, keras.Sequential):
        model = model._functional  # noqa: SLF001
    return model is not None and hasattr(model, "_nodes_by_depth") and not any(
        isinstance(layer, (keras.Model, keras.layers.TFSMLayer)) for layer in model.layers)


def _not_adjustable(model) -> StepResult:
    import keras

    if any(isinstance(layer, keras.layers.TFSMLayer) for layer in getattr(model, "layers", [])):
        return StepResult(model, False, {"why": "a SavedModel's graph is one opaque layer here, with no Keras layers "
                                                "to adjust; save the model as .keras to use these steps"})
    return StepResult(model, False, {"why": "needs a functional or Sequential model without nested models"})


def clone(model):
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


@dataclass
class _Graph:
    producer: dict[int, Any]                  # tensor id → layer that made it
    consumers: dict[int, list[Any]]           # tensor id → layers that read it
    tensors: dict[int, Any]
    outputs: set[int]


def _graph(model) -> _Graph:
    import keras

    g = _Graph({}, {}, {}, {id(t) for t in (model._functional if isinstance(model, keras.Sequential) else model).outputs})
    for node in _nodes(model._functional if isinstance(model, keras.Sequential) else model):
        for t in node.outputs:
            g.producer[id(t)] = node.operation
            g.tensors[id(t)] = t
        for t in node.input_tensors:
            g.consumers.setdefault(id(t), []).append(node.operation)
    return g


def _kind(layer) -> str | None:
    from keras import layers as L

    if isinstance(layer, L.SeparableConv2D):
        return "separable"
    if isinstance(layer, L.DepthwiseConv2D):
        return "depthwise" if layer.depth_multiplier == 1 else None
    if isinstance(layer, L.Conv2D):
        return "conv" if getattr(layer, "groups", 1) == 1 else None
    if isinstance(layer, L.Dense):
        return "dense"
    if isinstance(layer, L.BatchNormalization):
        return "bn" if layer.axis in (-1, [-1], 3, [3]) and layer.scale else None
    return None


def _act(layer) -> str | None:
    """'linear', 'relu', 'relu6' for scale-friendly activations; None for anything else."""
    from keras import layers as L

    if isinstance(layer, L.ReLU):
        if layer.negative_slope or layer.threshold:
            return None
        return "relu" if layer.max_value is None else ("relu6" if float(layer.max_value) == 6.0 else None)
    if isinstance(layer, L.Activation) or hasattr(layer, "activation"):
        name = getattr(getattr(layer, "activation", None), "__name__", "linear")
        return name if name in ("linear", "relu", "relu6") else None
    return "linear"


def _passes(layer) -> bool:
    from keras import layers as L

    return isinstance(layer, (L.MaxPooling2D, L.AveragePooling2D, L.ZeroPadding2D, L.Dropout, L.ReLU, L.Activation))


@dataclass(frozen=True)
class Pair:
    producer: Any            # scaled by 1/s on its output channels
    consumers: tuple[Any, ...]
    tensor: Any              # the consumers' input, whose per-channel range is measured
    relu6: bool


def pairs(model) -> list[Pair]:
    """Producer → [activation, pooling] → consumers chains along which per-channel scaling is exact."""
    g = _graph(model)
    found = []
    for tid, cons in g.consumers.items():
        if tid in g.outputs or not cons or not all(_kind(c) in ("conv", "depthwise", "separable", "dense") for c in cons):
            continue
        relu6, layer = False, g.producer.get(tid)
        while layer is not None and _passes(layer):
            if _act(layer) is None:
                layer = None
                break
            relu6 |= _act(layer) == "relu6"
            inner = layer.input
            if len(g.consumers.get(id(inner), [])) != 1 or id(inner) in g.outputs:
                layer = None
                break
            layer = g.producer.get(id(inner))
        kind = _kind(layer) if layer is not None else None
        if kind not in ("conv", "depthwise", "bn") or _act(layer) is None:
            continue
        relu6 |= _act(layer) == "relu6"
        if kind == "bn" and not layer.center:
            continue
        found.append(Pair(layer, tuple(cons), g.tensors[tid], relu6))
    return found


@dataclass(frozen=True)
class Group:
    """Tensors joined by channel-preserving layers (Add, pooling, ReLU, padding) whose channels can be scaled as one:
    every producer's output channel c divided by s_c, every consumer's input channel c multiplied by s_c."""
    producers: tuple[Any, ...]
    consumers: tuple[Any, ...]
    tensors: tuple[Any, ...]


def _single_use(layer) -> bool:
    return len(getattr(layer, "_inbound_nodes", [])) == 1


def stream_groups(model) -> list[Group]:
    """The residual streams: groups that hold an Add (a chain without one is a :func:`pairs` pair). A group is kept
    only when every tensor in it is made by a scalable producer or a channel-preserving layer, and read only by
    scalable consumers or channel-preserving layers; anything else (a model output, Concatenate, Multiply, a
    nonlinearity other than ReLU, a shared layer) leaves the group as it is."""
    from keras import layers as L

    g = _graph(model)

    def through(layer) -> bool:   # scaling channel c by 1/s before the layer scales its output's channel c by 1/s
        return isinstance(layer, L.Add) or (_passes(layer) and _act(layer) in ("linear", "relu"))

    seen: set[int] = set()
    found = []
    for start, layer in g.producer.items():
        if not isinstance(layer, L.Add) or start in seen:
            continue
        stack, tensors, producers, consumers, ok = [start], {}, {}, {}, True
        while stack and ok:
            tid = stack.pop()
            if tid in tensors:
                continue
            tensors[tid] = g.tensors[tid]
            p = g.producer.get(tid)
            if tid in g.outputs or p is None or not _single_use(p):
                ok = False
            elif through(p):
                stack.extend(id(t) for t in p._inbound_nodes[0].input_tensors)  # noqa: SLF001
            elif _kind(p) in ("conv", "depthwise", "bn") and _act(p) in ("linear", "relu") and getattr(p, "center", True):
                producers[id(p)] = p
            else:
                ok = False
            for c in g.consumers.get(tid, []):
                if not _single_use(c):
                    ok = False
                elif through(c):
                    stack.extend(id(t) for t in c._inbound_nodes[0].output_tensors)  # noqa: SLF001
                elif _kind(c) in ("conv", "depthwise", "separable", "dense"):
                    consumers[id(c)] = c
                else:
                    ok = False
        seen.update(tensors)
        if ok and producers and consumers:
            found.append(Group(tuple(producers.values()), tuple(consumers.values()), tuple(tensors.values())))
    return found


ACT_BUDGET = 256 << 20   # bytes of activations one probe batch may hold: calibration statistics stream in batches


def _batch_for(tensors: list[Any], model=None) -> int:
    """Samples per probe batch so that the tensors of one batch fit ACT_BUDGET and the forward pass that makes
    them fits the forward budget (at most BATCH)."""
    from .batching import batch_size

    per = sum(4 * int(np.prod([d or 1 for d in t.shape[1:]])) for t in tensors)
    kept = int(max(1, min(BATCH, ACT_BUDGET // max(per, 1))))
    return min(kept, batch_size(model, cap=BATCH)) if model is not None else kept


def _probe_batches(model, tensors: list[Any], x: np.ndarray):
    """The values of ``tensors`` batch by batch over ``x``: one batch in memory at a time, never all of x."""
    import keras

    probe = keras.Model(model.inputs, tensors)
    step = _batch_for(tensors, model)
    for i in range(0, len(x), step):
        ys = probe([x[i:i + step]], training=False)
        yield [np.asarray(y) for y in (ys if isinstance(ys, (list, tuple)) else [ys])]


def _channel_max(model, tensors: list[Any], x: np.ndarray) -> list[np.ndarray]:
    """Per-channel max |value| of each tensor over the calibration inputs."""
    out = [None] * len(tensors)
    for ys in _probe_batches(model, tensors, x):
        for j, y in enumerate(ys):
            m = np.abs(y).reshape(-1, y.shape[-1]).max(axis=0)
            out[j] = m if out[j] is None else np.maximum(out[j], m)
    return out


# ---------------------------------------------------------------- equalization

def _in_range(layer) -> np.ndarray | None:
    """Per input channel weight range of a consumer whose input channels share a quantization scale;
    None for a per-channel (depthwise) consumer, whose weights do not limit the scaling."""
    k = _kind(layer)
    if k in ("depthwise", "separable"):
        return None
    w = layer.get_weights()[0]
    return np.abs(w).reshape(-1, w.shape[-2], w.shape[-1]).max(axis=(0, 2)) if k == "conv" else np.abs(w).max(axis=1)


def _scales(a: np.ndarray, r2: np.ndarray | None, relu6: bool) -> np.ndarray:
    live = a > 1e-12
    if r2 is None:   # per-channel consumer: bring every channel to the widest one's range
        s = np.where(live, a / max(float(a.max()), 1e-12), 1.0)
    else:            # Nagel et al.: equal relative ranges on both sides, s_i = sqrt(a_i / r2_i)
        s = np.where(live & (r2 > 1e-12), np.sqrt(a / np.maximum(r2, 1e-12)), 1.0)
        s = s / np.exp(np.mean(np.log(s[live]))) if live.any() else s   # keep the overall magnitude
    s = np.clip(s, S_MIN, S_MAX)
    if relu6:   # ReLU6(x / s) == ReLU6(x) / s only where x never reaches 6 and x / s stays below 6
        s = np.where(a >= 6.0 - 1e-4, 1.0, np.maximum(s, a / 6.0))
    return s.astype(np.float32)


def _scale_out(layer, s: np.ndarray) -> None:
    w = layer.get_weights()
    k = _kind(layer)
    if k == "bn":
        w[0] = w[0] / s   # gamma, then beta (pairs() requires both)
        w[1] = w[1] / s
    elif k == "conv":
        w[0] = w[0] / s
        if layer.use_bias:
            w[1] = w[1] / s
    elif k == "depthwise":
        w[0] = w[0] / s.reshape(1, 1, -1, 1)
        if layer.use_bias:
            w[1] = w[1] / s
    layer.set_weights(w)


def _scale_in(layer, s: np.ndarray) -> None:
    w = layer.get_weights()
    k = _kind(layer)
    if k == "conv":
        w[0] = w[0] * s.reshape(1, 1, -1, 1)
    elif k == "dense":
        w[0] = w[0] * s.reshape(-1, 1)
    else:   # depthwise, or the depthwise half of a separable conv
        w[0] = w[0] * s.reshape(1, 1, -1, 1)
    layer.set_weights(w)


def _separable_intermediate_max(model, layers: list[Any], x: np.ndarray) -> list[np.ndarray]:
    """Per-channel max |depthwise output| inside each SeparableConv2D (the tensor TFLite quantizes between them)."""
    import keras

    out: list[np.ndarray | None] = [None] * len(layers)
    for ins in _probe_batches(model, [layer.input for layer in layers], x):
        for j, (layer, xs) in enumerate(zip(layers, ins)):
            y = np.asarray(keras.ops.depthwise_conv(xs, layer.depthwise_kernel, strides=layer.strides,
                                                    padding=layer.padding, dilation_rate=layer.dilation_rate))
            b = np.abs(y).reshape(-1, y.shape[-1]).max(axis=0)
            out[j] = b if out[j] is None else np.maximum(out[j], b)
    return out


def equalize(model, x: np.ndarray, balance: bool = True, streams: bool | None = None) -> StepResult:
    """Cross-layer equalization of every exact pair and residual stream, on a copy of ``model``; verified in float.

    ``balance``: pairs share the range between activations and the consumer's weights (Nagel et al.'s
    s = sqrt(a / r)); without it every activation channel is brought to its tensor's widest range, and the weights
    take the scaling (activations cost fer's emotion CNN ten times more answers than weights do). ``streams``
    (default: when not balancing) also equalizes the residual streams (:func:`stream_groups`), each brought to its
    widest channel: one scale serves every tensor in the stream. Balanced without streams is the step as it was
    before streams existed, so the convert flow, which tries both and keeps the closer, never does worse."""
    from keras import layers as L

    if not functional(model):
        return _not_adjustable(model)
    eq = clone(model)
    found = pairs(eq)
    streams = stream_groups(eq) if (not balance if streams is None else streams) else []
    seps = [layer for layer in eq.layers if isinstance(layer, L.SeparableConv2D)]
    if not found and not seps and not streams:
        return StepResult(model, False, {"why": "no conv/depthwise pairs to equalize"})
    ranges = _channel_max(eq, [p.tensor for p in found], x) if found else []
    sep_ranges = _separable_intermediate_max(eq, seps, x) if seps else []
    spread_before, spread_after, names = [], [], []
    for p, a in zip(found, ranges):
        r2s = [r for r in (_in_range(c) for c in p.consumers) if r is not None] if balance else []
        s = _scales(a, np.max(r2s, axis=0) if r2s else None, p.relu6)
        _scale_out(p.producer, s)
        for c in p.consumers:
            _scale_in(c, s)
        spread_before.append(_spread(a))
        spread_after.append(_spread(a / s))
        names.append(f"{p.producer.name}→{'+'.join(c.name for c in p.consumers)}")
    for layer, a in zip(seps, sep_ranges):
        dw, pw, *rest = layer.get_weights()
        r2 = np.abs(pw).reshape(-1, pw.shape[-1]).max(axis=1) if pw.ndim == 2 else np.abs(pw)[0, 0].max(axis=1)
        s = _scales(a, r2 if balance else None, False)
        layer.set_weights([dw / s.reshape(1, 1, dw.shape[2], dw.shape[3]), pw * s.reshape(1, 1, -1, 1), *rest])
        spread_before.append(_spread(a))
        spread_after.append(_spread(a / s))
        names.append(f"{layer.name} (depthwise→pointwise)")
    for grp in streams:   # measured after the pairs: a pair's producer may feed the stream
        a = np.max(np.stack(_channel_max(eq, list(grp.tensors), x)), axis=0)
        s = _scales(a, None, False)
        for p in grp.producers:
            _scale_out(p, s)
        for c in grp.consumers:
            _scale_in(c, s)
        spread_before.append(_spread(a))
        spread_after.append(_spread(a / s))
        names.append(f"stream {'+'.join(p.name for p in grp.producers)}→{'+'.join(c.name for c in grp.consumers)}")
    diff = _float_change(model, eq, x)
    detail = {"pairs": len(names), "streams": len(streams), "balance": balance, "equalized": names[:40],
              "range_spread_before": round(float(np.median(spread_before)), 3),
              "range_spread_after": round(float(np.median(spread_after)), 3), "float_max_abs_change": diff}
    if diff > 1e-3:
        return StepResult(model, False, {**detail, "why": f"changed the float model's outputs by {diff:.2e}"})
    return StepResult(eq, True, detail)


def _spread(a: np.ndarray) -> float:
    """Widest channel range over the median one: how much of int8's range the median channel gets."""
    live = a[a > 1e-12]
    return float(live.max() / np.median(live)) if live.size else 1.0


def _paired_outputs(models: list[Any], x: np.ndarray):
    """Each model's (first) output on the same batch of ``x``, batch by batch (outputs never held for all of x)."""
    from .batching import batch_size

    outs = [m.outputs[0] if hasattr(m, "outputs") else None for m in models]
    per = max((4 * int(np.prod([d or 1 for d in t.shape[1:]])) for t in outs if t is not None), default=4)
    step = min(int(max(1, min(BATCH, ACT_BUDGET // max(per * len(models), 1)))), batch_size(list(models), cap=BATCH))
    for i in range(0, len(x), step):
        yield [np.asarray(_first(m([x[i:i + step]], training=False))) for m in models]


def _first(y):
    return y[0] if isinstance(y, (list, tuple)) else y


def _float_change(a, b, x: np.ndarray) -> float:
    return max(float(np.max(np.abs(ya - yb))) for ya, yb in _paired_outputs([a, b], x))


# ---------------------------------------------------------------- range setting

CLIP_PERCENTILE = 99.99
CLIP_MAX_KL = 1e-3        # the clipped float model must stay this close to the original …
CLIP_MIN_AGREEMENT = 0.995  # … and agree on this share of the calibration images


def clip_ranges(model, x: np.ndarray, percentile: float = CLIP_PERCENTILE) -> StepResult:
    """Cap every ReLU layer at the ``percentile`` of its calibration outputs; verified in float on ``x``."""
    from keras import layers as L

    from .fidelity import kl_per_sample

    if not functional(model):
        return _not_adjustable(model)
    cl = clone(model)
    relus = [layer for layer in cl.layers if isinstance(layer, L.ReLU) and not layer.negative_slope
             and not layer.threshold and len(getattr(layer, "_inbound_nodes", [])) == 1]
    if not relus:
        return StepResult(model, False, {"why": "no ReLU layers to cap (activations fused into conv layers are left alone)"})
    caps, shrink = [], []
    values = _collect(cl, [layer.output for layer in relus], x)
    for layer, v in zip(relus, values):
        top, cap = float(v.max()), float(np.percentile(v, percentile))
        if layer.max_value is not None:
            cap = min(cap, float(layer.max_value))
        if cap <= 0 or cap >= top * 0.98:   # nothing to gain: the range is not set by a few outliers
            continue
        layer.max_value = cap
        caps.append(layer.name)
        shrink.append(top / cap)
    if not caps:
        return StepResult(model, False, {"why": f"no ReLU range is set by outliers beyond the {percentile} percentile"})
    kls, agrees = [], []
    for ref, out in _paired_outputs([model, cl], x):
        kls.append(kl_per_sample(ref, out) if ref.ndim == 2 else np.mean((ref - out) ** 2, axis=tuple(range(1, ref.ndim))))
        agrees.append((ref.argmax(-1) == out.argmax(-1)).reshape(len(ref), -1).mean(axis=1))
    kl, agree = float(np.mean(np.concatenate(kls))), float(np.mean(np.concatenate(agrees)))
    detail = {"capped": len(caps), "percentile": percentile, "median_range_shrink": round(float(np.median(shrink)), 3),
              "float_kl": kl, "float_agreement": agree}
    if kl > CLIP_MAX_KL or agree < CLIP_MIN_AGREEMENT:
        return StepResult(model, False, {**detail, "why": f"changed the float model too much (KL {kl:.1e}, agreement {agree:.2%})"})
    return StepResult(cl, True, detail)


def _collect(model, tensors: list[Any], x: np.ndarray, per_tensor: int = 200_000) -> list[np.ndarray]:
    """Values of each tensor over the calibration inputs (subsampled to ``per_tensor`` values)."""
    parts: list[list[np.ndarray]] = [[] for _ in tensors]
    rng = np.random.default_rng(0)
    for ys in _probe_batches(model, tensors, x):
        for j, y in enumerate(ys):
            flat = y.ravel()
            keep = max(1, per_tensor * len(y) // len(x))
            parts[j].append(flat if flat.size <= keep else rng.choice(flat, keep, replace=False))
    return [np.concatenate(p) for p in parts]


# ---------------------------------------------------------------- bias correction

def _fake_quant(w: np.ndarray, axis_last: int) -> np.ndarray:
    """Symmetric int8 rounding per channel (TFLite's per-channel weights); ``axis_last`` trailing axes name a channel."""
    flat = w.reshape(-1, int(np.prod(w.shape[-axis_last:])))
    scale = np.maximum(np.abs(flat).max(axis=0), 1e-12) / 127.0
    return (np.clip(np.round(flat / scale), -127, 127) * scale).reshape(w.shape).astype(w.dtype)


def _quantized_weights(layer) -> list[np.ndarray]:
    w = layer.get_weights()
    k = _kind(layer)
    if k == "separable":
        return [_fake_quant(w[0], 2), _fake_quant(w[1], 1), *w[2:]]
    if k == "depthwise":
        return [_fake_quant(w[0], 2), *w[1:]]
    if k in ("conv", "dense"):
        return [_fake_quant(w[0], 1), *w[1:]]
    return w


def _linear_out(layer, x: np.ndarray, weights: list[np.ndarray]) -> np.ndarray:
    import keras

    k, ops = _kind(layer), keras.ops
    if k == "dense":
        return x @ weights[0]
    if k == "conv":
        return np.asarray(ops.conv(x, weights[0], strides=layer.strides, padding=layer.padding,
                                   dilation_rate=layer.dilation_rate))
    if k == "depthwise":
        return np.asarray(ops.depthwise_conv(x, weights[0], strides=layer.strides, padding=layer.padding,
                                             dilation_rate=layer.dilation_rate))
    return np.asarray(ops.separable_conv(x, weights[0], weights[1], strides=layer.strides, padding=layer.padding,
                                         dilation_rate=layer.dilation_rate))


def _quantized_model(model):
    q = clone(model)
    for layer in q.layers:
        if _kind(layer) in ("conv", "depthwise", "separable", "dense"):
            layer.set_weights(_quantized_weights(layer))
    return q


def bias_correct(model, x: np.ndarray) -> StepResult:
    """Remove the mean output shift that int8 weights cause, layer by layer; verified on ``x`` with the
    weight-quantized model (it must come closer to float than without the correction).

    The statistics stream: one batch of every layer's input at a time (batches sized to ACT_BUDGET), each
    layer's shift accumulated as a per-channel sum, so memory does not grow with the calibration set.
    """
    from .fidelity import kl_per_sample

    if not functional(model):
        return _not_adjustable(model)
    bc = clone(model)
    g = _graph(bc)
    targets = [layer for layer in bc.layers if _kind(layer) in ("conv", "depthwise", "separable", "dense")]
    if not targets:
        return StepResult(model, False, {"why": "no conv or dense layers whose weights int8 rounds"})
    quant = _quantized_model(bc)
    weights = [(layer.get_weights(), _quantized_weights(layer)) for layer in targets]
    totals: list[np.ndarray | float] = [0.0] * len(targets)
    counts = [0] * len(targets)
    # the inputs as the int8 model sees them
    for ins in _probe_batches(quant, [quant.get_layer(t.name).input for t in targets], x):
        for j, (layer, xs) in enumerate(zip(targets, ins)):
            w, wq = weights[j]
            d = _linear_out(layer, xs, w) - _linear_out(layer, xs, wq)
            d = d.reshape(-1, d.shape[-1]).astype(np.float64)
            totals[j], counts[j] = totals[j] + d.sum(axis=0), counts[j] + len(d)
    corrected, shifts = [], []
    for layer, total, count in zip(targets, totals, counts):
        delta = np.asarray(total) / max(count, 1)
        if _apply_shift(layer, g, delta.astype(np.float32)):
            corrected.append(layer.name)
            shifts.append(float(np.abs(delta).max()))
    if not corrected:
        return StepResult(model, False, {"why": "no layer has a bias or BN to take the correction"})
    before_kl, after_kl = [], []
    for ref, q_before, q_after in _paired_outputs([model, _quantized_model(model), _quantized_model(bc)], x):
        before_kl.append(kl_per_sample(ref, q_before))
        after_kl.append(kl_per_sample(ref, q_after))
    before, after = float(np.mean(np.concatenate(before_kl))), float(np.mean(np.concatenate(after_kl)))
    detail = {"layers": len(corrected), "max_shift": round(max(shifts), 6),
              "weight_quant_kl_before": before, "weight_quant_kl_after": after}
    if not after < before:
        return StepResult(model, False, {**detail, "why": "did not bring the int8-weight model closer to float"})
    return StepResult(bc, True, detail)


def _apply_shift(layer, g: _Graph, delta: np.ndarray) -> bool:
    """Add ``delta`` to the layer's pre-activation output: its bias, else the moving mean of the BN that reads it."""
    w = layer.get_weights()
    if getattr(layer, "use_bias", False):
        w[-1] = w[-1] + delta
        layer.set_weights(w)
        return True
    if _act(layer) != "linear":
        return False
    cons = g.consumers.get(id(layer.output), [])
    if len(cons) == 1 and _kind(cons[0]) == "bn":
        bn = cons[0]
        bw = bn.get_weights()
        mean_i = int(bn.scale) + int(bn.center)
        bw[mean_i] = bw[mean_i] - delta
        bn.set_weights(bw)
        return True
    return False
