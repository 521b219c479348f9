"""Prune to an accuracy budget: the largest channel pruning whose fine-tuned int8 model stays within it.

1. A quick sensitivity scan prunes each channel group alone (25/50/75%, no fine-tuning) and measures
   the accuracy it costs, so that sensitive (often early and narrow) layers keep more channels.
2. For each global level (the fraction of prunable channels removed), a threshold on that cost gives
   every group its own sparsity; the pruned model is fine-tuned (early stopping on a split of the
   training data, learning rate lowered on plateaus, stop once recovered), converted to int8 and
   measured on the validation data against the budget, its latency timed side by side with the
   unpruned int8 model.
3. The levels rise until two in a row miss the budget (or the target speed-up is met); the chosen
   point is the fastest one within the budget. When none is faster, the answer is an honest no.

The budget is pruning's own cost in the precision that ships: the pruned model's best integer file against the
unpruned model's (each the closer to its Keras model of plain int8 and int8-ptq, chosen on the calibration images,
a classifier's softmax in float, as ``convert`` ships them; measured on the same validation data), so that
int8's own loss against float never counts as pruning's. Quantization's loss (unpruned Keras − unpruned int8) and the
float pruning cost (unpruned Keras − pruned Keras) are reported beside it.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import numpy as np

from keras_edge.device.contract import in_range, positive_int
from keras_edge.device.contract import ConfigError

from . import graph as g
from ..tflite.fidelity import pp
from .base import Criterion, check_sparsity

Log = Callable[[str], None]
SCAN = (0.25, 0.5, 0.75)          # sparsities of the per-group sensitivity scan
LEVELS = (0.3, 0.45, 0.6, 0.7, 0.8)
FASTER = 1.05                     # a speed-up below this is measurement noise, not a reason to prune


@dataclass(frozen=True)
class SearchConfig:
    """How to search; validated on construction (errors name the field)."""

    max_accuracy_drop: float = 0.01
    target_speedup: float | None = None
    levels: tuple[float, ...] = LEVELS
    epochs: int = 12                # a ceiling per level: early stopping ends most runs sooner
    patience: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    criterion: Criterion = Criterion.L1
    channel_multiple: int = 8
    sensitivity: bool = True
    distill: bool | None = None     # None: try both at the first level and keep the better
    threads: int | None = None      # interpreter threads for the int8 latency
    board: str | None = None        # a board kind: judge speed by its predicted latency, not this machine's
    calib_samples: int = 200
    verbose: int | str = 0

    def __post_init__(self) -> None:
        in_range("max_accuracy_drop", self.max_accuracy_drop, 0.0, 1.0, "a fraction such as 0.01 for one point")
        if self.target_speedup is not None and not (math.isfinite(self.target_speedup) and self.target_speedup > 1.0):
            raise ConfigError("target_speedup", f"{self.target_speedup} is not above 1", "give a speed-up such as 1.5")
        if not self.levels:
            raise ConfigError("levels", "is empty", "give fractions such as 0.3,0.5,0.7")
        object.__setattr__(self, "levels", tuple(sorted(check_sparsity(v, "levels") for v in self.levels)))
        positive_int("epochs", self.epochs, "a ceiling on fine-tuning epochs such as 12")
        positive_int("patience", self.patience, "1 or more epochs")
        positive_int("batch_size", self.batch_size, "a batch size such as 32")
        positive_int("channel_multiple", self.channel_multiple, "1, 4, 8 or 16")
        positive_int("calib_samples", self.calib_samples, "at least 1")
        object.__setattr__(self, "criterion", Criterion(self.criterion))


TIMING_S = 1.5   # each side-by-side timing lasts at least this long (12 rounds of a small model take ~50 ms)


@dataclass(frozen=True)
class Point:
    """One measured pruning level (level 0 is the unpruned model)."""

    level: float
    achieved: float                 # fraction of prunable channels removed
    params: int
    flops: int | None
    int8_ms: float                  # this level's int8 p50, timed side by side with the unpruned int8 model
    speedup: float                  # base_ms / int8_ms
    accuracy: float                 # Keras, on the validation data
    int8_accuracy: float
    drop: float                     # pruning's cost: unpruned int8 accuracy − this int8 accuracy (the budget's number)
    within: bool
    epochs: int = 0
    seconds: float = 0.0
    distill: bool = False
    # the unpruned int8 p50 timed in the same rounds as int8_ms (the machine's load moves both alike, so the
    # speed-up is their ratio; the unpruned row's own int8_ms was timed alone, earlier, and may differ)
    base_ms: float | None = None
    float_drop: float | None = None     # unpruned Keras accuracy − this Keras accuracy (pruning's cost in float)
    quant_loss: float | None = None     # unpruned Keras − unpruned int8: quantization's own loss, never pruning's
    recipe: str = "int8"                # the integer file measured: plain int8 or int8-ptq, whichever was closer
    # the speed-ups measured: at the level, then again with every level within budget side by side at the end;
    # ``speedup`` is the lower (a gain must hold in an equivalent measurement), int8_ms/base_ms its timings
    speedups: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Sensitivity:
    layer: str
    channels: int
    drops: dict[float, float]       # sparsity → accuracy lost, pruned alone without fine-tuning

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "channels": self.channels, "drops": {str(k): round(v, 6) for k, v in self.drops.items()}}


@dataclass(frozen=True)
class SearchResult:
    base: Point
    points: tuple[Point, ...]
    chosen: Point | None
    model: Any | None               # the chosen pruned Keras model
    sensitivity: tuple[Sensitivity, ...]
    distill_note: str
    verdict: str
    interval_pp: float              # 95% Wilson half-width of the base accuracy, in points
    n_val: int
    seconds: float
    per_layer: dict[str, float] = field(default_factory=dict)   # the chosen point's sparsity per group
    budget: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return {"budget": self.budget, "base": self.base.to_dict(), "points": [p.to_dict() for p in self.points],
                "chosen": self.chosen.to_dict() if self.chosen else None, "verdict": self.verdict,
                "distill": self.distill_note, "interval_pp": round(self.interval_pp, 3), "n_val": self.n_val,
                "seconds": round(self.seconds, 1), "per_layer": {k: round(v, 4) for k, v in self.per_layer.items()},
                "sensitivity": [s.to_dict() for s in self.sensitivity]}


def wilson_half_width(p: float, n: int) -> float:
    """Half the width of the 95% Wilson score interval of a proportion ``p`` measured on ``n`` samples
    (convert's interval, :func:`keras_edge.host.tflite.fidelity.wilson`)."""
    from ..tflite.fidelity import wilson

    lo, hi = wilson(round(p * n), n)
    return (hi - lo) / 2 if n > 0 else 1.0


# ---------------------------------------------------------------- sensitivity and allocation

def scan(model: Any, x_val: np.ndarray, y_val: np.ndarray, cfg: SearchConfig, log: Log,
         base: float | None = None) -> tuple[Sensitivity, ...]:
    """Accuracy lost by pruning each channel group alone (no fine-tuning), at the SCAN sparsities."""
    from .channels import channel_groups, plan_and_rebuild

    base = g.accuracy(model, x_val, y_val) if base is None else base
    out = []
    for layer, channels, producers in channel_groups(model):
        drops = {}
        for s in SCAN:
            pruned, plan = plan_and_rebuild(model, {p: s for p in producers}, cfg.criterion, cfg.channel_multiple)
            drops[s] = 0.0 if plan.channels_after == plan.channels_before else max(0.0, base - g.accuracy(pruned, x_val, y_val))
        out.append(Sensitivity(layer, channels, drops))
        log(f"  sensitivity {layer} ({channels} ch): " + ", ".join(f"{s:.0%} → -{d:.1%}" for s, d in drops.items()))
    return tuple(out)


def _sparsity_for(sens: Sensitivity, threshold: float) -> float:
    """The largest sparsity (≤ 0.9) whose interpolated solo cost stays at or below ``threshold``."""
    xs = [0.0, *sens.drops]
    ys = np.maximum.accumulate([0.0, *sens.drops.values()])   # cost never falls as more is pruned
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2]) if ys[-1] > ys[-2] else 0.05
    grid = np.arange(0.0, 0.9001, 0.025)
    cost = np.where(grid <= xs[-1], np.interp(grid, xs, ys), ys[-1] + slope * (grid - xs[-1]))
    ok = grid[cost <= threshold + 1e-12]
    return float(ok.max()) if ok.size else 0.0


def allocate(level: float, sensitivity: tuple[Sensitivity, ...]) -> dict[str, float]:
    """Per-group sparsities whose channel-weighted mean is ``level``, sensitive groups pruned least."""
    total = sum(s.channels for s in sensitivity)

    def mean(t: float) -> float:
        return sum(s.channels * _sparsity_for(s, t) for s in sensitivity) / total

    free = mean(0.0)
    if free >= level:   # pruning that costs nothing already goes past the level: take it in proportion
        return {s.layer: _sparsity_for(s, 0.0) * level / free for s in sensitivity}
    lo, hi = 0.0, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mean(mid) < level else (lo, mid)
    return {s.layer: _sparsity_for(s, hi) for s in sensitivity}


# ---------------------------------------------------------------- the search

class _Int8:
    """Converts models to int8 and times them side by side against the unpruned one (or predicts their time on
    a board kind: a layer cheap on the board and dear here is judged where it will run)."""

    def __init__(self, calib: np.ndarray, threads: int | None, board: str | None = None):
        self.calib, self.threads, self.board = calib, threads, board
        self._blobs: dict[int, bytes] = {}

    def convert(self, model: Any) -> tuple[Any, str]:
        """The best integer-only file for ``model``, as ``convert`` would ship it, loaded, and its recipe: plain int8
        or int8-ptq (equalization, then bias correction), whichever is closer to the Keras model on the calibration
        images (KL, label-free: the validation data only ever measures), a classifier's softmax in float."""
        from ..tflite import ptq
        from ..tflite.evaluate import predict
        from ..tflite.fidelity import kl_per_sample
        from ..tflite.variants import ConvertInputs, IoType, convert
        from ..tfenv import captured_output

        inputs = ConvertInputs([self.calib], IoType.INT8, float_softmax=True)
        with captured_output():
            blobs = {"int8": convert(model, "int8", inputs)[0]}
            adjusted = model
            if ptq.functional(model):
                for step in (ptq.equalize, ptq.bias_correct):
                    res = step(adjusted, self.calib)
                    adjusted = res.model if res.applied else adjusted
                if adjusted is not model:
                    blobs["int8-ptq"] = convert(adjusted, "int8", inputs)[0]
        engines = {k: self._load(b) for k, b in blobs.items()}
        if len(engines) == 1:
            return engines["int8"], "int8"
        ref = model.predict(self.calib, verbose=0)
        kl = {k: float(np.mean(kl_per_sample(ref, predict(e, [self.calib])[0]))) for k, e in engines.items()}
        best = min(kl, key=kl.get)
        return engines[best], best

    def _load(self, blob: bytes) -> Any:
        import os
        import tempfile

        from ..tflite.evaluate import load_tflite

        fd, path = tempfile.mkstemp(suffix=".tflite")
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        try:
            engine = load_tflite(path, self.threads)
        finally:
            os.unlink(path)
        self._blobs[id(engine)] = blob
        return engine

    def accuracy(self, engine: Any, x: np.ndarray, y: np.ndarray) -> float:
        from ..tflite.evaluate import predict, top1

        return float(np.mean(top1(predict(engine, [x])[0]) == y))

    def times(self, engines: dict[str, Any], x: np.ndarray) -> dict[str, float]:
        from ..tflite.evaluate import side_by_side

        if self.board:
            from keras_edge.device.profile.boards import predicted_ms

            return {k: predicted_ms(self._blobs[id(v)], self.board) for k, v in engines.items()}
        return {k: v[0] for k, v in side_by_side(engines, [x], min_seconds=TIMING_S).items()}


def confirm_speedups(points: list[Point], q: Any, base_engine: Any, engines: dict[float, Any], x: np.ndarray,
                     log: Log) -> list[Point]:
    """Time the unpruned int8 model and every level within budget again, side by side in one run, and keep
    each level's lower speed-up: one short timing on a shared machine can be off by several times (a level
    that halves the multiply-adds measured 0.93x once and 4.7x the next run)."""
    if not engines or q.board:   # a board's predicted latency is not a measurement to repeat
        return points
    t = q.times({"base": base_engine, **{f"{lv}": e for lv, e in engines.items()}}, x)
    out = []
    for p in points:
        if p.level not in engines:
            out.append(replace(p, speedups=(round(p.speedup, 6),)))
            continue
        again = t["base"] / t[f"{p.level}"]
        first = replace(p, speedups=(round(p.speedup, 6), round(again, 6)))
        out.append(first if p.speedup <= again else replace(first, int8_ms=t[f"{p.level}"], base_ms=t["base"],
                                                            speedup=again))
    log("speed-ups timed again, all levels within budget side by side: "
        + ", ".join(f"{p.level:.0%} {p.speedups[0]:.2f}x then {p.speedups[1]:.2f}x" for p in out if len(p.speedups) > 1)
        + " (each level keeps the lower)")
    return out


def search(model: Any, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
           cfg: SearchConfig = SearchConfig(), log: Log = lambda s: None) -> SearchResult:
    """The largest channel pruning of ``model`` whose fine-tuned int8 accuracy on ``x_val`` stays within budget."""
    from .channels import plan_and_rebuild
    from .distill import fit

    t_start = time.perf_counter()
    g.check_classifier(model, np.asarray(y))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    n_stop = max(1, len(x) // 10)          # early stopping watches this, never the validation data
    stop_x, stop_y, fit_x, fit_y = x[order[:n_stop]], y[order[:n_stop]], x[order[n_stop:]], y[order[n_stop:]]
    q = _Int8(x[order[:cfg.calib_samples]], cfg.threads, cfg.board)
    if cfg.board:
        log(f"speed: int8 latency predicted for board {cfg.board} (its per-op cost table), not timed here")
    base_acc = g.accuracy(model, x_val, y_val)
    base_engine, base_recipe = q.convert(model)
    base_int8 = q.accuracy(base_engine, x_val, y_val)
    half = wilson_half_width(base_int8, len(y_val))   # the budget compares int8 accuracies
    base_ms = q.times({"base": base_engine}, x_val[:1])["base"]
    quant_loss = base_acc - base_int8
    base = Point(0.0, 0.0, g.count_params(model), g.count_flops(model), base_ms, 1.0, base_acc, base_int8,
                 0.0, True, base_ms=base_ms, float_drop=0.0, quant_loss=quant_loss, recipe=base_recipe)
    log(f"unpruned: accuracy {base_acc:.2%} (Keras), {base_int8:.2%} ({base_recipe}: quantization's own loss "
        f"{quant_loss * 100:+.2f} pp) on {len(y_val)} validation images (±{half * 100:.1f} pp at 95%); "
        f"pruning budget {pp(cfg.max_accuracy_drop)} against the unpruned int8 model")
    sens = scan(model, x_val, y_val, cfg, log, base_acc) if cfg.sensitivity else ()
    points: list[Point] = []
    models: dict[float, Any] = {}
    maps: dict[float, dict[str, float]] = {}
    distill = cfg.distill
    distill_note = "on (given)" if distill else "off (given)" if distill is False else ""
    misses = 0
    engines: dict[float, Any] = {}   # within budget: timed again, all together, at the end
    recovered = g.accuracy(model, stop_x, stop_y)
    for level in cfg.levels:
        t0 = time.perf_counter()
        per_layer = allocate(level, sens) if sens else level
        tries = [True, False] if distill is None else [distill]
        best, seen = None, {}
        for use in tries:
            pruned, plan = plan_and_rebuild(model, per_layer, cfg.criterion, cfg.channel_multiple)
            hist = fit(pruned, fit_x, fit_y, epochs=cfg.epochs, batch_size=cfg.batch_size, learning_rate=cfg.learning_rate,
                       teacher=model if use else None, validation=(stop_x, stop_y), patience=cfg.patience,
                       recovered=recovered, verbose=cfg.verbose)
            pruned = g.clone(pruned)
            acc = g.accuracy(pruned, x_val, y_val)
            engine, recipe = q.convert(pruned)   # judged in the precision that ships: int8 accuracy first, float breaks a tie
            int8_acc = q.accuracy(engine, x_val, y_val)
            seen[use] = int8_acc
            if best is None or (int8_acc, acc) > best[0]:
                best = ((int8_acc, acc), use, pruned, plan, len(hist.history.get("loss", [])), engine, recipe)
            if len(tries) > 1:
                log(f"  level {level:.0%}: fine-tuned {'with' if use else 'without'} distillation → {acc:.2%} "
                    f"(int8 {int8_acc:.2%})")
        (int8_acc, acc), use, pruned, plan, epochs, engine, recipe = best
        if distill is None:
            distill = use
            distill_note = (f"{'on' if use else 'off'} (measured at {level:.0%}: int8 {seen[True]:.2%} with the unpruned "
                            f"model as teacher, {seen[False]:.2%} without" + ("; a tie keeps it on)" if seen[True] == seen[False] else ")"))
        t = q.times({"base": base_engine, "pruned": engine}, x_val[:1])
        drop = base_int8 - int8_acc   # pruning's cost, int8 against int8
        p = Point(level, 1.0 - plan.channels_after / plan.channels_before, g.count_params(pruned), g.count_flops(pruned),
                  t["pruned"], t["base"] / t["pruned"], acc, int8_acc, drop, drop <= cfg.max_accuracy_drop + 1e-12,
                  epochs, time.perf_counter() - t0, use, base_ms=t["base"], float_drop=base_acc - acc,
                  quant_loss=quant_loss, recipe=recipe)
        points.append(p)
        models[level], maps[level] = pruned, (per_layer if isinstance(per_layer, dict) else {})
        if p.within:
            engines[level] = engine
        log(f"level {level:.0%}: {p.achieved:.0%} of channels removed, params {p.params:,}, int8 {p.int8_ms:.3f} ms "
            f"against the unpruned {p.base_ms:.3f} ms in the same rounds ({p.speedup:.2f}x), int8 accuracy {int8_acc:.2%} (pruning cost "
            f"{drop * 100:+.2f} pp against the unpruned int8, {'within' if p.within else 'over'} budget; float "
            f"{p.float_drop * 100:+.2f} pp), {epochs} epoch(s), {p.seconds:.0f} s")
        misses = 0 if p.within else misses + 1
        if misses >= 2 or (p.within and cfg.target_speedup and p.speedup >= cfg.target_speedup):
            break
    points = confirm_speedups(points, q, base_engine, engines, x_val[:1], log)
    fits = [p for p in points if p.within and p.speedup >= FASTER]
    chosen = max(fits, key=lambda p: (p.speedup, -p.drop)) if fits else None
    if chosen is None:
        verdict = (f"no pruning level within the {pp(cfg.max_accuracy_drop)} budget is faster than the unpruned int8 "
                   "model (curve above): keep the unpruned model, or allow a larger drop")
    else:
        short = cfg.target_speedup and chosen.speedup < cfg.target_speedup
        verdict = (f"chose {chosen.level:.0%}: {chosen.speedup:.2f}x faster int8 at {chosen.drop * 100:+.2f} pp pruning cost "
                   f"(int8 against int8; quantization's own loss {quant_loss * 100:+.2f} pp)"
                   + (f"; the target {cfg.target_speedup:.2f}x was not reached within the budget" if short else ""))
    if half * 2 > cfg.max_accuracy_drop:
        verdict += (f" (note: {len(y_val)} validation images resolve accuracy to ±{half * 100:.1f} pp at 95%, "
                    f"wider than the budget; give more labeled images for a firmer answer)")
    return SearchResult(base, tuple(points), chosen, models.get(chosen.level) if chosen else None, sens, distill_note,
                        verdict, half * 100, len(y_val), time.perf_counter() - t_start,
                        maps.get(chosen.level, {}) if chosen else {}, cfg.max_accuracy_drop)
