"""Accuracy-budgeted int8: keep the layers that quantize worst in float until the variant fits.

TFLite's quantization debugger measures every quantized tensor against the float computation. A
tensor whose activation range is very wide loses the resolution of everything else in it; keeping
only its producer in float does not help, because a Quantize op is then inserted before its
consumers. So each step keeps a bad tensor's producer *and* consumers in float, re-converts,
measures accuracy on the evaluation set, and stops as soon as the budget is met.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..tfenv import captured_output, import_tf
from ..tflite.fidelity import pp
from ..tflite.variants import ConvertInputs, VariantFailed, configure_int8, representative_dataset

STEPS = (1, 2, 3, 4, 6, 8, 12, 16)


@dataclass(frozen=True)
class LayerError:
    tensor: str
    op: str
    channel_nsr: float   # worst per-channel noise-to-signal ratio of the quantized tensor
    rmse_scale: float    # RMSE in units of the quantization step (TFLite's usual metric)

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "op": self.op, "channel_nsr": round(self.channel_nsr, 6),
                "rmse_scale": round(self.rmse_scale, 6)}


@dataclass(frozen=True)
class Trial:
    """One candidate of the search: how many ranked layers were offered, and what it measured."""

    layers: int
    ops: int
    loss: float
    fidelity: float          # the continuous metric (KL, or noise-to-signal): lower is better
    bytes: int
    latency_ms: float | None
    accepted: bool

    def to_dict(self) -> dict:
        return {"layers": self.layers, "ops": self.ops, "loss": round(self.loss, 6), "fidelity": self.fidelity,
                "bytes": self.bytes, "latency_ms": self.latency_ms, "accepted": self.accepted}


@dataclass(frozen=True)
class SelectiveResult:
    model: bytes | None
    denylist: tuple[str, ...]
    loss: float | None
    fits: bool
    layers: tuple[LayerError, ...]
    trials: tuple[Trial, ...] = ()
    stopped: str = ""             # why the search ended
    seconds: float = 0.0
    ranked_on: int = 0            # calibration samples the layer ranking ran on (fewer when time ran short)

    @property
    def tried(self) -> tuple[tuple[int, float], ...]:
        """(layers offered, loss) per attempt."""
        return tuple((t.layers, t.loss) for t in self.trials)

    def pareto(self, baseline: Trial | None = None) -> list[Trial]:
        """Trials (and the baseline) not beaten on size, latency and fidelity at once."""
        pts = [t for t in ([baseline] if baseline else []) + list(self.trials)]

        def beats(a: Trial, b: Trial) -> bool:
            keys = [(a.bytes, b.bytes), (a.fidelity, b.fidelity)]
            if a.latency_ms is not None and b.latency_ms is not None:
                keys.append((a.latency_ms, b.latency_ms))
            return all(x <= y for x, y in keys) and any(x < y for x, y in keys)

        return [t for t in pts if not any(beats(o, t) for o in pts if o is not t)]


Measure = Callable[[bytes], "float | tuple[float, float] | tuple[float, float, float | None]"]


def _measured(value) -> tuple[float, float, float | None]:
    """evaluate() may return a loss, (loss, fidelity) or (loss, fidelity, latency_ms)."""
    if isinstance(value, tuple):
        return (float(value[0]), float(value[1]), value[2] if len(value) > 2 else None)
    return float(value), float(value), None


def _channel_nsr(float_tensors: Sequence[np.ndarray], quant_tensors: Sequence[np.ndarray], scale: float, zp: int) -> float:
    f = np.concatenate([np.asarray(t, np.float64).reshape(-1, np.shape(t)[-1]) for t in float_tensors])
    q = np.concatenate([np.asarray(t, np.float64).reshape(-1, np.shape(t)[-1]) for t in quant_tensors])
    deq = (q - zp) * scale
    signal = np.mean(f * f, axis=0)
    noise = np.mean((f - deq) ** 2, axis=0)
    live = signal > 1e-12 * max(float(signal.max()), 1e-30)
    return float(np.max(noise[live] / signal[live])) if live.any() else 0.0


def _converter(tf, model, inputs: ConvertInputs):
    c = tf.lite.TFLiteConverter.from_keras_model(model)
    configure_int8(c, tf, inputs)
    # float I/O and builtins so that denylisted nodes can stay in float
    c.inference_input_type = tf.float32
    c.inference_output_type = tf.float32
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    return c


PROGRESS_S = 5.0      # a step that takes longer than this says how far it is
MIN_RANK_SAMPLES = 4  # the ranking's least number of samples, whatever the clock says
RANK_SHARE = 0.5      # the share of the time limit the layer ranking may use


def _debugger(tf, model, inputs: ConvertInputs, dataset, verbose: bool):
    """TFLite's QuantizationDebugger over ``model``: one calibration serves the ranking and every candidate."""
    with captured_output(not verbose):
        opts = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={"channel_nsr": _channel_nsr})
        return tf.lite.experimental.QuantizationDebugger(converter=_converter(tf, model, inputs), debug_dataset=dataset,
                                                         debug_options=opts)


def _timed_samples(inputs: ConvertInputs, deadline: float | None, log: Callable[[str], None], seen: list[int]):
    """The calibration samples as a debug dataset that stops at ``deadline`` (after MIN_RANK_SAMPLES) and says
    how far it is every PROGRESS_S seconds; ``seen`` receives how many samples were given."""
    import time

    def gen():
        n = len(inputs.calib[0])
        t0 = last = time.perf_counter()
        for i, sample in enumerate(representative_dataset(inputs)()):
            now = time.perf_counter()
            if deadline is not None and i >= MIN_RANK_SAMPLES and now > deadline:
                log(f"  int8-selective: ranking layers on {i} of {n} samples (its share of the time limit is used)")
                break
            if now - last > PROGRESS_S:
                log(f"  int8-selective: ranking layers, sample {i}/{n} ({now - t0:.0f}s)")
                last = now
            seen[0] = i + 1
            yield sample
    return gen


def _ranked(dbg) -> list[LayerError]:
    import csv

    buf = io.StringIO()
    dbg.layer_statistics_dump(buf)
    out = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r["scale"]) or 1.0
        out.append(LayerError(r["tensor_name"], r["op_name"], float(r.get("channel_nsr") or 0.0),
                              float(np.sqrt(float(r["mean_squared_error"])) / scale)))
    return sorted(out, key=lambda e: (-e.channel_nsr, -e.rmse_scale))


def layer_errors(model, inputs: ConvertInputs, verbose: bool = False) -> list[LayerError]:
    """Quantization error of every quantized tensor, worst first (TFLite's QuantizationDebugger)."""
    tf = import_tf(verbose)
    dbg = _debugger(tf, model, inputs, representative_dataset(inputs), verbose)
    dbg.run()
    return _ranked(dbg)


def _candidate(dbg, tf, deny: list[str]) -> bytes:
    """The calibrated model quantized with ``deny`` kept in float: no new calibration."""
    # the public ``options`` setter would also build an instrumented model and its interpreter, unused here;
    # the ranking's options (its per-channel metric) are put back after
    saved = dbg._debug_options  # noqa: SLF001
    dbg._debug_options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=deny)  # noqa: SLF001
    try:
        return dbg.get_nondebug_quantized_model()
    finally:
        dbg._debug_options = saved  # noqa: SLF001


@dataclass(frozen=True)
class OpGraph:
    """Tensor-level view of a converted model: who reads each tensor, what each op reads (execution order)."""

    consumers: dict[str, list[str]]
    inputs: dict[str, list[str]]
    order: list[str]


def op_graph(model_bytes: bytes) -> OpGraph:
    from ai_edge_litert.interpreter import Interpreter

    with captured_output():
        it = Interpreter(model_content=model_bytes)
    names = {t["index"]: t["name"] for t in it.get_tensor_details()}
    consumers: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    order: list[str] = []
    for op in it._get_ops_details():  # noqa: SLF001 - the only way LiteRT exposes the op graph
        outs = [names[i] for i in op["outputs"] if i in names]
        ins = [names[i] for i in op["inputs"] if i in names]
        for o in outs:
            inputs[o] = ins
            order.append(o)
        for i in ins:
            consumers.setdefault(i, []).extend(outs)
    return OpGraph(consumers, inputs, order)


def rank_by_local_error(layers: list[LayerError], graph: OpGraph) -> list[LayerError]:
    """Order tensors by the error they add themselves, not the error they inherit from upstream.

    The debugger compares end-to-end float and quantized activations, so one bad layer makes every
    later tensor look bad; the culprit is where the noise-to-signal ratio jumps.
    """
    by_name = {e.tensor: e for e in layers}
    eff: dict[str, float] = {}
    local: dict[str, float] = {}
    for t in graph.order:
        upstream = max((eff.get(i, 0.0) for i in graph.inputs.get(t, [])), default=0.0)
        e = by_name.get(t)
        measured = e is not None and e.rmse_scale > 1e-4   # pass-through ops (pooling) share scales: no signal
        eff[t] = e.channel_nsr if measured else upstream
        local[t] = max(0.0, eff[t] - upstream) if measured else 0.0
    # Equal jumps (to one decimal) go to the earlier tensor: noise from upstream reaches every later one,
    # and per-channel ratios saturate at the output (a softmax's rarely-chosen classes look all noise).
    position = {t: i for i, t in enumerate(graph.order)}
    return sorted(layers, key=lambda e: (-round(local.get(e.tensor, e.channel_nsr), 1),
                                         position.get(e.tensor, len(position)), -e.rmse_scale))


def selective_int8(model, inputs: ConvertInputs, evaluate: Measure, budget: float,
                   verbose: bool = False, log: Callable[[str], None] = lambda s: None,
                   time_limit: float | None = None, baseline: tuple[float, float] | None = None,
                   candidate_s: float | None = None) -> SelectiveResult:
    """Keep the worst-quantized tensors (with their consumers) in float, driven by a continuous metric.

    Layers are offered in ranked chunks (``STEPS``); a chunk is kept only when it lowers the fidelity
    metric, so the best candidate improves monotonically and never ends worse than ``baseline``
    (the all-int8 model's (loss, fidelity)). Stops when the loss fits ``budget``, when the ranking is
    used up, or before a candidate would overrun ``time_limit`` seconds. The limit covers the whole
    search: one calibration, the layer ranking (stopped at half the limit, on fewer samples) and the
    candidates, each started only when the one before says it fits (so the limit is overrun by one at most).
    ``candidate_s`` (what one int8 conversion took) ends it before ranking when not even one candidate fits.
    """
    import time

    t0 = time.perf_counter()
    if time_limit is not None and candidate_s is not None and candidate_s > time_limit:
        return SelectiveResult(None, (), None, False, (), (), f"the time limit of {time_limit:g}s before it started: one "
                               f"candidate takes at least one int8 conversion (~{candidate_s:.0f}s here)", 0.0)
    tf = import_tf(verbose)
    from ..tflite.softmax_head import append_softmax, logits_model

    head = logits_model(model) if inputs.float_softmax else None   # candidates end as int8 does: a float softmax
    finish: Callable[[bytes], bytes] = append_softmax if head is not None else (lambda b: b)
    model = head if head is not None else model
    deadline = None if time_limit is None else t0 + time_limit
    n = len(inputs.calib[0])
    log(f"  int8-selective: calibrating on {n} samples")
    seen = [0]
    rank_deadline = None if time_limit is None else t0 + RANK_SHARE * time_limit
    dbg = _debugger(tf, model, inputs, _timed_samples(inputs, rank_deadline, log, seen), verbose)
    calib_s = time.perf_counter() - t0
    with captured_output(not verbose):
        graph = op_graph(_candidate(dbg, tf, []))
    if deadline is not None and time.perf_counter() > deadline:
        return SelectiveResult(None, (), None, False, (), (), f"the time limit of {time_limit:.0f}s (calibrating took "
                               f"{calib_s:.0f}s; no time left to rank layers)", time.perf_counter() - t0)
    t1 = time.perf_counter()
    dbg.run()   # outside captured_output: the dataset logs its progress
    layers = rank_by_local_error(_ranked(dbg), graph)
    rank_s = time.perf_counter() - t1
    log(f"  int8-selective: {len(layers)} tensors ranked on {seen[0]} of {n} samples in {rank_s:.0f}s"
        f" (calibration {calib_s:.0f}s)")
    trials: list[Trial] = []
    best_fid = baseline[1] if baseline else float("inf")
    best: tuple[float, bytes, tuple[str, ...]] | None = None
    kept: list[str] = []
    # the first candidate starts whenever time is left (the limit may be overrun by that one candidate); each
    # later one only when the one before says it fits
    prev, last_s, stopped = 0, 0.0, "every ranked layer was offered"
    for k in [s for s in STEPS if s <= len(layers)]:
        elapsed = time.perf_counter() - t0
        if time_limit is not None and elapsed + last_s > time_limit:
            stopped = (f"the time limit of {time_limit:.0f}s (after {elapsed:.0f}s; " +
                       (f"one more candidate takes ~{last_s:.0f}s)" if trials else "no time left for a candidate)"))
            break
        deny = list(kept)
        for e in layers[prev:k]:
            for name in [e.tensor, *graph.consumers.get(e.tensor, [])]:
                if name not in deny:
                    deny.append(name)
        prev = k
        t1 = time.perf_counter()
        try:
            with captured_output(not verbose):
                blob = finish(_candidate(dbg, tf, deny))
        except Exception as err:  # noqa: BLE001 - converter failures for one denylist are not fatal
            log(f"  int8-selective: keeping {k} layer(s) in float failed to convert ({str(err).splitlines()[0][:120]})")
            continue
        loss, fid, lat = _measured(evaluate(blob))
        last_s = time.perf_counter() - t1
        accepted = fid < best_fid
        trials.append(Trial(k, len(deny), loss, fid, len(blob), lat, accepted))
        log(f"  int8-selective: {k} worst layer(s) offered ({len(deny)} ops) → fidelity loss {fid:.4g} (lower is closer to Keras), loss {pp(loss)}"
            f" ({'kept' if accepted else 'not better: dropped'}; budget {pp(budget)}; {time.perf_counter() - t0:.0f}s)")
        if accepted:
            kept, best_fid, best = deny, fid, (loss, blob, tuple(deny))
            if loss <= budget + 1e-12:
                return SelectiveResult(blob, tuple(deny), loss, True, tuple(layers), tuple(trials),
                                       "the budget is met", time.perf_counter() - t0, seen[0])
    if not trials and best is None and stopped.startswith("every"):
        raise VariantFailed("no selective int8 model could be converted")
    secs = time.perf_counter() - t0
    if best is None:
        return SelectiveResult(None, (), min((t.loss for t in trials), default=None), False, tuple(layers),
                               tuple(trials), stopped, secs, seen[0])
    return SelectiveResult(best[1], best[2], best[0], False, tuple(layers), tuple(trials), stopped, secs, seen[0])
