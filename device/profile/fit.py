"""Fitting the cost tables of :mod:`.boards` on published latencies (numpy only, no TensorFlow).

A model's workload is summed per kernel family (:func:`features`: dense MACs, depthwise MACs, bytes, ops), so
a fit needs only those sums and the published figures, both kept in ``boards.json``. :func:`fit` searches
the shared coefficients (``a``, ``g``, ``o``) on a log grid; for each candidate every board's two unit costs
have a closed form (the geometric mean of published / work over its figures of that base), and the
candidate with the least squared log error on the fitted figures wins. Held-out figures take no part: their
error is the honest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .boards import BASE, Shape
from .graph import Family, OpClass, OpInfo

KEYS = ("dense", "depthwise", "bytes", "ops")


def features(ops: Sequence[OpInfo]) -> dict[str, dict[str, float]]:
    """Per kernel family: dense MACs, depthwise MACs, bytes and op count (ops on constants only left out)."""
    out: dict[str, dict[str, float]] = {}
    for op in ops:
        if not op.activations:
            continue
        f = out.setdefault(str(op.family), dict.fromkeys(KEYS, 0.0))
        kind = {OpClass.DENSE: "dense", OpClass.DEPTHWISE: "depthwise"}.get(op.op_class)
        if kind:
            f[kind] += op.macs
        f["bytes"] += op.bytes
        f["ops"] += 1
    return out


def work(feats: dict[str, dict[str, float]], a: float, g: float, o: float,
         factor: dict[str, float]) -> dict[str, float]:
    """Units of work per base ("f32", "qs8"), each family weighted by its factor."""
    out = {"f32": 0.0, "qs8": 0.0}
    for fam, f in feats.items():
        w = f["dense"] + a * f["depthwise"] + g * f["bytes"] + o * f["ops"]
        out[BASE[Family(fam)]] += w * float(factor.get(fam, 1.0))
    return out


@dataclass(frozen=True)
class Figure:
    """One published latency: a board kind, a reference model workload, the time, and whether it is held out."""

    board: str
    model: str          # key of the workload ("mobilenet_v2/int8")
    ms: float
    held_out: bool
    source: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Figure":
        return cls(str(d["board"]), str(d["model"]), float(d["ms"]), bool(d.get("held_out")), str(d.get("source", "")))


@dataclass(frozen=True)
class Fit:
    shape: Shape
    ns_per_mac: dict[str, dict[str, float]]      # board → {"f32", "qs8"}
    rms_log_fitted: float

    def predict(self, feats: dict[str, dict[str, float]], board: str) -> float:
        w = work(feats, self.shape.depthwise_mac, self.shape.byte, self.shape.op_macs, self.shape.factor)
        return sum(w[b] * self.ns_per_mac[board][b] for b in w if w[b]) / 1e6


def _unit_costs(figs: Sequence[Figure], works: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    logs: dict[str, dict[str, list[float]]] = {}
    for f in figs:
        w = works[f.model]
        base = max(w, key=w.get)    # the reference models run (nearly) all in one base
        logs.setdefault(f.board, {}).setdefault(base, []).append(math.log(f.ms * 1e6 / w[base]))
    return {b: {k: math.exp(sum(v) / len(v)) for k, v in d.items()} for b, d in logs.items()}


def fit(figures: Sequence[Figure], workloads: dict[str, dict[str, dict[str, float]]], factor: dict[str, float],
        parallel_fraction: float = 0.8) -> Fit:
    """The shared coefficients and per-board unit costs that best explain the non-held-out figures."""
    fitted = [f for f in figures if not f.held_out]
    best: tuple[float, Fit] | None = None
    grid_a = np.geomspace(0.5, 32, 25)
    grid_g = np.concatenate([[0.0], np.geomspace(0.05, 50, 25)])
    grid_o = np.concatenate([[0.0], np.geomspace(1e3, 3e6, 25)])
    for a in grid_a:
        for g in grid_g:
            for o in grid_o:
                works = {m: work(workloads[m], a, g, o, factor) for m in {f.model for f in fitted}}
                units = _unit_costs(fitted, works)
                err = 0.0
                for f in fitted:
                    w = works[f.model]
                    pred = sum(w[b] * units[f.board].get(b, 0.0) for b in w) / 1e6
                    err += (math.log(pred) - math.log(f.ms)) ** 2 if pred > 0 else 1e9
                if best is None or err < best[0]:
                    shape = Shape(float(a), float(g), float(o), parallel_fraction, dict(factor))
                    best = (err, Fit(shape, units, math.sqrt(err / len(fitted))))
    assert best is not None
    return best[1]


def errors(fit_: Fit, figures: Sequence[Figure], workloads: dict[str, dict[str, dict[str, float]]]) -> list[dict[str, Any]]:
    """Predicted against published for every figure: relative error, and whether it was held out."""
    out = []
    for f in figures:
        if f.board not in fit_.ns_per_mac:
            continue
        pred = fit_.predict(workloads[f.model], f.board)
        out.append({"board": f.board, "model": f.model, "published_ms": f.ms, "predicted_ms": round(pred, 2),
                    "error": round(pred / f.ms - 1, 4), "held_out": f.held_out, "source": f.source})
    return out
