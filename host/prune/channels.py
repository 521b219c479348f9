"""Structured (channel) pruning: remove whole filters so the model really computes less.

A walk over the layer graph gives every tensor's channel axis a description: which *channel
groups* it is made of, side by side (``Concatenate`` joins groups), repeated over spatial positions
after ``Flatten``. A Conv/Dense/SeparableConv output starts a group; BatchNormalization,
DepthwiseConv (multiplier 1), PReLU, activations, pooling, padding and dropout pass channels
through; ``Add``/``Multiply``/... tie their inputs into one group, pruned as one. Anything else
(and the model's inputs and outputs) pins its groups: they keep every channel, and the layer is
named in the report. Filters are ranked per group (L1/L2 norm of the producing filters, or the
BatchNormalization scale), the weakest are dropped from producers and from every consumer's input,
and a smaller model is rebuilt from the edited layer configs with the surviving weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

import numpy as np

import keras

from keras_edge.device.contract import ConfigError, ModelError

from . import graph as g
from .base import Criterion, LayerReport, PruneConfig, PruneResult, SkippedLayer

L = keras.layers


class Role(StrEnum):
    PRODUCER = "producer"        # new output channels from all input channels: Conv, Dense, SeparableConv
    PER_CHANNEL = "per_channel"  # channel c → channel c with per-channel weights: BN, DepthwiseConv, PReLU
    PASS = "pass"                # channel c → channel c, no weights: activations, pooling, padding, dropout
    TIE = "tie"                  # elementwise across inputs (Add, Multiply, ...): one group
    CONCAT = "concat"            # channel-axis Concatenate: the inputs' channels side by side
    FLATTEN = "flatten"          # positions folded into the channel axis, channels innermost
    BLOCK = "block"              # cannot be resized: keeps every input and output channel


_PRODUCERS = {L.Conv1D: {"kernel", "bias"}, L.Conv2D: {"kernel", "bias"}, L.Conv3D: {"kernel", "bias"},
              L.Dense: {"kernel", "bias"}, L.SeparableConv1D: {"depthwise_kernel", "pointwise_kernel", "bias"},
              L.SeparableConv2D: {"depthwise_kernel", "pointwise_kernel", "bias"}}
_PER_CHANNEL = {L.BatchNormalization: {"gamma", "beta", "moving_mean", "moving_variance"},
                L.DepthwiseConv1D: {"kernel", "bias"}, L.DepthwiseConv2D: {"kernel", "bias"}, L.PReLU: {"alpha"}}
_PASS = {L.ReLU, L.LeakyReLU, L.ELU, L.Activation, L.Rescaling, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
         L.SpatialDropout3D, L.GaussianNoise, L.GaussianDropout, L.AlphaDropout, L.ActivityRegularization,
         L.Identity, L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D, L.AveragePooling2D,
         L.AveragePooling3D, L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
         L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D, L.ZeroPadding1D, L.ZeroPadding2D,
         L.ZeroPadding3D, L.Cropping1D, L.Cropping2D, L.Cropping3D, L.UpSampling1D, L.UpSampling2D, L.UpSampling3D}
_TIE = {L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum}
_MIXING = ("softmax", "log_softmax")  # normalise across channels: removing one changes the others


def role_of(layer: Any, rank: int, uses: int) -> tuple[Role, str]:
    """How ``layer`` treats the channel axis of a rank-``rank`` input, or BLOCK and why."""
    kind = type(layer)
    if not isinstance(layer, L.Layer):
        return Role.BLOCK, "not a Keras layer"
    if isinstance(layer, keras.Model):
        return Role.BLOCK, "nested model"
    if uses > 1:
        return Role.BLOCK, "layer shared by several calls"
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return Role.BLOCK, "channels_first data format"
    names = {v.name for v in layer.weights}
    if kind in _PRODUCERS:
        if getattr(layer, "groups", 1) != 1:
            return Role.BLOCK, "grouped convolution"
        if not names <= _PRODUCERS[kind]:
            return Role.BLOCK, "quantized or LoRA weights"
        return Role.PRODUCER, ""
    if kind in _PER_CHANNEL:
        if getattr(layer, "depth_multiplier", 1) != 1:
            return Role.BLOCK, "depth_multiplier above 1"
        if kind is L.BatchNormalization and layer.axis not in (-1, rank - 1):
            return Role.BLOCK, "normalises an axis other than channels"
        if kind is L.PReLU and layer.alpha.shape[-1] == 1:
            return Role.PASS, ""
        return (Role.PER_CHANNEL, "") if names <= _PER_CHANNEL[kind] else (Role.BLOCK, "unexpected weights")
    if kind in _PASS:
        if kind is L.Activation and getattr(layer.activation, "__name__", "") in _MIXING:
            return Role.BLOCK, "softmax across channels"
        if kind is L.Rescaling and (np.ndim(layer.scale) or np.ndim(layer.offset)):
            return Role.BLOCK, "per-channel rescaling"
        return Role.PASS, ""
    if kind in _TIE:
        return Role.TIE, ""
    if kind is L.Concatenate:
        return (Role.CONCAT, "") if layer.axis in (-1, rank - 1) else (Role.TIE, "")
    if kind is L.Flatten:
        return Role.FLATTEN, ""
    return Role.BLOCK, f"{kind.__name__} is not supported by channel pruning"


@dataclass(frozen=True)
class Channels:
    """A tensor's channel axis: groups side by side, the whole repeated ``rep`` times (after Flatten)."""

    segments: tuple[tuple[int, int], ...]  # (group id, channels)
    rep: int = 1

    @property
    def width(self) -> int:
        return sum(n for _, n in self.segments) * self.rep


@dataclass
class Group:
    """Channels pruned together: one producer's outputs, or several tied by Add/Multiply/..."""

    size: int
    pinned: list[str] = field(default_factory=list)   # why these channels must all stay
    producers: list[str] = field(default_factory=list)
    keep: np.ndarray | None = None


class _Walk:
    """Union-find over channel groups plus what each layer call sees."""

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.groups: list[Group] = []
        self.io: dict[str, tuple[Role, list[Channels], Channels]] = {}
        self.blocked: list[SkippedLayer] = []

    def new(self, size: int, pinned: str = "") -> Channels:
        self.parent.append(len(self.groups))
        self.groups.append(Group(size, [pinned] if pinned else []))
        return Channels(((len(self.groups) - 1, size),))

    def root(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def group(self, gid: int) -> Group:
        return self.groups[self.root(gid)]

    def union(self, a: int, b: int) -> None:
        ra, rb = self.root(a), self.root(b)
        if ra != rb:
            self.parent[rb] = ra
            self.groups[ra].pinned += self.groups[rb].pinned
            self.groups[ra].producers += self.groups[rb].producers

    def pin(self, ch: Channels, why: str) -> None:
        for gid, _ in ch.segments:
            self.group(gid).pinned.append(why)


def _walk(model: keras.Model) -> _Walk:
    w = _Walk()
    desc: dict[int, Channels] = {}
    all_nodes = list(g.nodes(model))
    uses: dict[int, int] = {}
    for node in all_nodes:
        uses[id(node.operation)] = uses.get(id(node.operation), 0) + 1
    for node in all_nodes:
        op = node.operation
        if node.is_input:
            for t in node.outputs:
                desc[id(t)] = w.new(int(t.shape[-1]), "model input")
            continue
        ins = [desc[id(t)] for t in node.input_tensors]
        rank = len(node.input_tensors[0].shape) if node.input_tensors else 0
        role, why = role_of(op, rank, uses[id(op)])
        out = _propagate(w, op, node, role, ins)
        if out is None or len(node.outputs) != 1 or out.width != node.outputs[0].shape[-1]:
            role, why = Role.BLOCK, why or "changes the channel axis in a way pruning cannot follow"
        if role is Role.BLOCK:
            name = f"{op.name} ({type(op).__name__}: {why})"
            for ch in ins:
                w.pin(ch, f"feeds {name}")
            out = None
            for t in node.outputs:
                desc[id(t)] = w.new(int(t.shape[-1]), f"comes from {name}")
            w.blocked.append(SkippedLayer(op.name, type(op).__name__, why))
        else:
            desc[id(node.outputs[0])] = out
            if role is Role.PRODUCER and getattr(getattr(op, "activation", None), "__name__", "") in _MIXING:
                w.pin(out, f"{op.name} applies softmax across its channels")
        w.io[op.name] = (role, ins, out)
    for t in g.graph_of(model).outputs:
        w.pin(desc[id(t)], "model output")
    return w


def _propagate(w: _Walk, op: Any, node: Any, role: Role, ins: list[Channels]) -> Channels | None:
    """The output's channel description for a supported role; None when the inputs do not fit it."""
    if role is Role.PRODUCER:
        out = w.new(int(node.outputs[0].shape[-1]))
        w.group(out.segments[0][0]).producers.append(op.name)
        return out
    if role in (Role.PER_CHANNEL, Role.PASS):
        return ins[0] if len(ins) == 1 else None
    if role is Role.TIE:
        first = ins[0]
        if any([n for _, n in c.segments] != [n for _, n in first.segments] or c.rep != first.rep for c in ins):
            return None  # broadcasting across channels, or differently composed inputs
        for c in ins[1:]:
            for (a, _), (b, _) in zip(first.segments, c.segments):
                w.union(a, b)
        return first
    if role is Role.CONCAT:
        return Channels(sum((c.segments for c in ins), ())) if all(c.rep == 1 for c in ins) else None
    if role is Role.FLATTEN:
        shape = node.input_tensors[0].shape
        if any(d is None for d in shape[1:]):
            return None  # positions unknown: cannot map Dense rows to channels
        return Channels(ins[0].segments, ins[0].rep * int(np.prod(shape[1:-1], dtype=np.int64)))
    return None


def _norms(kernel: np.ndarray, criterion: Criterion) -> np.ndarray:
    flat = kernel.reshape(-1, kernel.shape[-1])
    n = np.sqrt((flat ** 2).sum(axis=0)) if criterion is Criterion.L2 else np.abs(flat).sum(axis=0)
    return n / (n.mean() + 1e-12)  # comparable across the producers of a tied group


def keep_count(channels: int, sparsity: float, multiple: int = 1) -> int:
    """Channels to keep: the nearest to ``channels·(1 − sparsity)``, optionally a multiple of ``multiple``.

    SIMD kernels work on blocks of channels (often 8 or 16 for int8), so a count just above a block
    boundary costs nearly a whole block more.
    """
    n = max(1, channels - math.floor(channels * sparsity + 0.5))
    if multiple > 1:
        n = max(multiple, multiple * math.floor(n / multiple + 0.5))
    return min(channels, n)


def _group_sparsity(group: Group, sparsity: float | Mapping[str, float]) -> float:
    """One sparsity for a group: the uniform one, or the least any of its producers asks for."""
    if not isinstance(sparsity, Mapping):
        return sparsity
    return min((sparsity.get(p, 0.0) for p in group.producers), default=0.0)


def _rank(model: keras.Model, w: _Walk, sparsity: float | Mapping[str, float], criterion: Criterion,
          multiple: int) -> None:
    scores: dict[int, np.ndarray] = {}
    bn: dict[int, np.ndarray] = {}
    for name, (role, ins, out) in w.io.items():
        layer = model.get_layer(name)
        if role is Role.PRODUCER:
            k = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
            r = w.root(out.segments[0][0])
            norms = _norms(np.asarray(k.numpy()), Criterion.L2 if criterion is Criterion.L2 else Criterion.L1)
            scores[r] = scores.get(r, 0) + norms
        elif role is Role.PER_CHANNEL and isinstance(layer, L.BatchNormalization) and layer.scale and ins[0].rep == 1:
            gamma, off = np.abs(layer.gamma.numpy()), 0
            for gid, n in ins[0].segments:
                r, part = w.root(gid), gamma[off:off + n]
                bn[r] = bn.get(r, 0) + part / (part.mean() + 1e-12)
                off += n
    for r, s in scores.items():
        group = w.groups[r]
        if group.pinned:
            continue
        s = bn.get(r, s) if criterion is Criterion.BN else s
        group.keep = np.sort(np.argsort(-s, kind="stable")[:keep_count(group.size, _group_sparsity(group, sparsity),
                                                                            multiple)])


def _indices(w: _Walk, ch: Channels) -> np.ndarray | None:
    """Surviving positions along a tensor's channel axis, or None when all survive."""
    parts, off, changed = [], 0, False
    for gid, n in ch.segments:
        keep = w.group(gid).keep
        changed |= keep is not None and len(keep) < n
        parts.append(off + (np.arange(n) if keep is None else keep))
        off += n
    if not changed:
        return None
    idx = np.concatenate(parts)
    return (np.arange(ch.rep)[:, None] * off + idx[None, :]).ravel()


def _take(a: np.ndarray, idx: np.ndarray | None, axis: int) -> np.ndarray:
    return a if idx is None else np.take(a, idx, axis=axis)


def _sliced(layer: Any, role: Role, idx_in: np.ndarray | None, idx_out: np.ndarray | None) -> list[np.ndarray]:
    out = []
    for v in layer.weights:
        a = np.asarray(v.numpy())
        if role is Role.PRODUCER:
            if v.name == "pointwise_kernel":
                dm = layer.depth_multiplier  # pointwise input c·dm + m comes from input channel c
                exp = None if idx_in is None else (idx_in[:, None] * dm + np.arange(dm)[None, :]).ravel()
                a = _take(_take(a, exp, -2), idx_out, -1)
            elif v.name in ("kernel", "depthwise_kernel"):
                a = _take(a, idx_in, -2)
                a = _take(a, idx_out, -1) if v.name == "kernel" else a
            else:  # bias
                a = _take(a, idx_out, -1)
        elif role is Role.PER_CHANNEL:
            a = _take(a, idx_in, -2 if isinstance(layer, (L.DepthwiseConv1D, L.DepthwiseConv2D)) and v.name == "kernel"
                      else -1)
        out.append(a)
    return out


def _rebuild(model: keras.Model, w: _Walk) -> keras.Model:
    idx = {name: (_indices(w, ins[0]) if ins else None, None if out is None else _indices(w, out))
           for name, (_, ins, out) in w.io.items()}
    sizes = {name: len(o) for name, (role, _, _) in w.io.items()
             if role is Role.PRODUCER and (o := idx[name][1]) is not None}

    def clone_layer(layer: Any) -> Any:
        cfg = layer.get_config()
        if layer.name in sizes:
            cfg["units" if isinstance(layer, L.Dense) else "filters"] = sizes[layer.name]
        return layer.__class__.from_config(cfg)

    new = keras.models.clone_model(model, clone_function=clone_layer)
    for layer in model.layers:
        if not layer.weights:
            continue  # InputLayer is renamed by clone_model; weightless layers need nothing
        role = w.io.get(layer.name, (Role.BLOCK,))[0]
        weights = (_sliced(layer, role, *idx[layer.name]) if role in (Role.PRODUCER, Role.PER_CHANNEL)
                   else layer.get_weights())
        new.get_layer(layer.name).set_weights(weights)
    return new


@dataclass(frozen=True)
class ChannelPlan:
    """Which channels survive, per producing layer, and which layers stay whole (and why)."""

    layers: tuple[LayerReport, ...]
    skipped: tuple[SkippedLayer, ...]
    channels_before: int
    channels_after: int


def plan_and_rebuild(model: keras.Model, sparsity: float | Mapping[str, float], criterion: Criterion | str = Criterion.L1,
                     multiple: int = 1) -> tuple[keras.Model, ChannelPlan]:
    """Rank and remove ``sparsity`` of every prunable channel group; the smaller model and the plan.

    ``sparsity`` is one fraction for every group, or a fraction per producer layer name (a group tied
    by Add takes the smallest of its producers'; groups not named keep all their channels).
    """
    w = _walk(model)
    _rank(model, w, sparsity, Criterion(criterion), multiple)
    reports, skipped = [], list(w.blocked)
    for name, (role, _, out) in w.io.items():
        if role is not Role.PRODUCER:
            continue
        group = w.group(out.segments[0][0])
        layer = model.get_layer(name)
        if group.keep is None:
            reasons = list(dict.fromkeys(group.pinned))
            why = "; ".join(reasons[:2]) + (f"; and {len(reasons) - 2} more" if len(reasons) > 2 else "")
            skipped.append(SkippedLayer(name, type(layer).__name__, f"channels kept whole: {why}"))
        else:
            reports.append(LayerReport(name, type(layer).__name__, "channels", group.size, len(group.keep),
                                       tuple(int(i) for i in group.keep)))
    if not reports:
        shown = "; ".join(f"{s.name}: {s.reason}" for s in skipped[:2])
        raise ModelError(f"nothing in model {model.name!r} can be channel-pruned ({shown})",
                         "channel pruning needs Conv/Dense layers whose outputs feed supported layers; "
                         "try the magnitude method")
    roots = {w.root(gid) for name, (role, _, out) in w.io.items() if role is Role.PRODUCER
             for gid, _ in out.segments}
    kept = [w.groups[r] for r in roots if w.groups[r].keep is not None]
    plan = ChannelPlan(tuple(reports), tuple(skipped), sum(gr.size for gr in kept), sum(len(gr.keep) for gr in kept))
    if plan.channels_after == plan.channels_before and not isinstance(sparsity, Mapping):
        raise ConfigError("channel_multiple", f"{multiple} keeps every channel of model {model.name!r} at sparsity "
                          f"{sparsity} (its prunable layers have {min(r.before for r in reports)}–"
                          f"{max(r.before for r in reports)} channels)", "give 1 to keep exact channel counts, or a higher sparsity")
    return _rebuild(model, w), plan


def channel_prune(model: keras.Model, x: np.ndarray | None, y: np.ndarray | None, config: PruneConfig) -> PruneResult:
    """Remove whole filters, rebuild a smaller plain model, then fine-tune it (PRUNE_METHODS['channels'])."""
    from .distill import fit

    pruned, plan = plan_and_rebuild(model, config.sparsity, config.criterion, config.channel_multiple)
    if config.epochs > 0:
        # a tenth of the training data decides when to stop (epochs is a ceiling); never the caller's validation data
        order = np.random.default_rng(0).permutation(len(x))
        n_stop = len(x) // 10 if len(x) >= 50 else 0
        stop, train = order[:n_stop], order[n_stop:]
        fit(pruned, x[train], y[train], epochs=config.epochs, batch_size=config.batch_size,
            learning_rate=config.learning_rate, teacher=model if config.distill else None,
            temperature=config.temperature, alpha=config.alpha, verbose=config.verbose,
            validation=(x[stop], y[stop]) if n_stop else None,
            recovered=g.accuracy(model, x[stop], y[stop]) if n_stop else None)
    pruned = g.clone(pruned)  # no optimizer or compile state, whatever the input model carried
    return PruneResult(
        model=pruned, method=config.method, sparsity=config.sparsity,
        achieved=1.0 - plan.channels_after / plan.channels_before, layers=plan.layers, skipped=plan.skipped,
        params_before=g.count_params(model), params_after=g.count_params(pruned),
        nonzero_before=g.count_nonzero(model), nonzero_after=g.count_nonzero(pruned),
        flops_before=g.count_flops(model), flops_after=g.count_flops(pruned), epochs=config.epochs)


def channel_groups(model: keras.Model) -> list[tuple[str, int, tuple[str, ...]]]:
    """The prunable channel groups: (a producer layer naming it, channels, every producer tied to it)."""
    w = _walk(model)
    seen, out = set(), []
    for name, (role, _, ch) in w.io.items():
        if role is not Role.PRODUCER:
            continue
        r = w.root(ch.segments[0][0])
        group = w.groups[r]
        if r in seen or group.pinned:
            continue
        seen.add(r)
        out.append((group.producers[0], group.size, tuple(group.producers)))
    return out
