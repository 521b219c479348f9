"""When plain int8 misses the accuracy budget: better integer variants first, then layers in float.

int8-ptq (equalization, bias correction: :mod:`.ptq`), int8-qat (opt-in: :mod:`.qat`) and the
int8-selective search (:mod:`.selective`), each converted and validated like every other variant by
the conversion job (:class:`.core._Job`), and each kept only when it is closer to Keras than the best
integer variant before it.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from dataclasses import replace
from typing import Any, Callable

from keras_edge.device.contract import bundle as B

from ..tflite import evaluate as E
from .choose import loss_of
from ..tflite.evaluate import summary

Log = Callable[[str], None]
PTQ_KEYS = ("agreement", "agreement_ci", "accuracy", "accuracy_ci", "accuracy_drop", "kl", "snr_db", "cosine",
            "agreement_bare", "agreement_ci_bare", "kl_bare")


def _step_line(entry: dict) -> str:
    """What a PTQ step bought, in the task's own terms (mAP / mean IoU for detection and segmentation)."""
    if entry.get("task_metric"):
        name = {"map50_95": "mAP@0.5:0.95", "miou": "mean IoU"}.get(entry["task_metric"], entry["task_metric"])
        value = entry.get(entry["task_metric"])
        return (f"{name} {value:.4f}, " if value is not None else "") + f"fidelity {entry.get('task_fidelity') or 0:.4f}"
    if entry.get("agreement") is None:
        return f"SNR {entry.get('snr_db')} dB, cosine {entry.get('cosine')}"
    bare = (f" (other rounding order: {entry['agreement_bare']:.2%}, KL {entry.get('kl_bare') or 0:.4g})"
            if entry.get("agreement_bare") is not None else "")
    return f"agreement {entry['agreement']:.2%}, KL {entry.get('kl') or 0:.4g}{bare}"
TASK_KEYS = ("task_metric", "map50", "map50_95", "miou", "task_fidelity", "metric_drop")   # detection/segmentation only


def _picked(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a step records of a variant's metrics: the classifier's keys, and the task metric's when there is one."""
    return {**{k: metrics.get(k) for k in PTQ_KEYS}, **{k: metrics[k] for k in TASK_KEYS if k in metrics}}


def improve_int8(job, variants: list[B.Variant], log: Log) -> tuple[dict | None, dict | None]:
    """When int8 misses the budget: int8-ptq (equalization, bias correction), then int8-qat when the best integer
    variant still misses (by default, bounded by ``qat_time``; ``qat_always`` runs it even within budget), then
    the int8-selective search if the best integer variant still misses. Appends the variants kept; returns the
    search's and the steps' records."""
    cfg = job.cfg
    int8 = next((v for v in variants if v.name == "int8" and v.status is B.VariantStatus.OK), None)
    if int8 is None or getattr(job, "constant", False):   # constant outputs: the note said so once, nothing to search
        return None, None
    misses = job.loss(int8) > cfg.max_accuracy_drop
    base, best, steps, selective = job.model, int8, None, None
    if misses and (cfg.ptq or cfg.selective or cfg.qat or cfg.qat_always):
        log(f"int8 exceeds the accuracy budget: {int8.metrics['verdict']['text']}")
    if misses and cfg.ptq:
        variant, steps, base = _ptq(job, int8, log)
        if variant is not None:
            variants.append(variant)
            best = variant
            log(f"int8-ptq: {summary(variant)}")
    if cfg.qat_always or (cfg.qat and misses and job.loss(best) > cfg.max_accuracy_drop):
        variant, steps, tuned = _qat(job, base, best, int8, steps, log)
        if variant is not None:
            variants.append(variant)
            base, best = tuned, variant
            log(f"int8-qat: {summary(variant)}")
    if misses and cfg.selective and job.loss(best) > cfg.max_accuracy_drop:
        log("searching for layers to keep in float (int8-selective)")
        variant, selective = _selective(job, base, best, log)
        if variant is not None:
            variants.append(variant)
            log(f"int8-selective: {summary(variant)}")
    return selective, steps


def _probe(job, blob: bytes, latency: bool = False) -> dict[str, Any]:
    """Metrics of a candidate model on the evaluation set (and a short latency measurement)."""
    probe = job.tmp / ".probe.tflite"
    probe.write_bytes(blob)
    try:
        tfl = E.load_tflite(probe, job.cfg.threads)
        outs = job.io_order(probe, tfl)[2]
        m = E.compare(outs, job.keras_out, job.data.eval.y, job.classification)
        if getattr(job, "task", None) is not None:   # detection/segmentation: the task metric decides
            m.update(job.task.metrics(outs))
        else:   # both rounding orders of a quantized input: a candidate's gain must hold in each
            m.update(E.compare_bare(tfl, job.data.eval.inputs, job.keras_out, job.data.eval.y, job.classification))
        if latency and job.cfg.board:   # judged where it will run: the named board kind's per-op costs
            from .target import predicted_ms

            m["latency_ms"] = round(predicted_ms(probe, job.cfg.board), 4)
        elif latency:
            m["latency_ms"] = round(E.side_by_side({"c": tfl}, [job.data.eval.x], rounds=3, per_round=5)["c"][0], 4)
    finally:
        probe.unlink(missing_ok=True)
    return m


def _selective(job, base: Any, baseline: B.Variant, log: Log) -> tuple[B.Variant | None, dict[str, Any]]:
    """int8-selective: the best integer model with its worst layers kept in float, searched on a continuous
    metric within the time limit; kept only when it is better than ``baseline`` (the best all-int8 variant)."""
    from ..tflite.fidelity import fidelity_loss
    from .selective import Trial, selective_int8

    def evaluate(blob: bytes) -> tuple[float, float, float | None]:
        m = _probe(job, blob, latency=True)
        return loss_of(m, job.keras_acc), fidelity_loss(m), m.get("latency_ms")

    t0 = time.perf_counter()
    base_loss, base_fid = job.loss(baseline), fidelity_loss(baseline.metrics)
    res = selective_int8(base, job.inputs, evaluate, job.cfg.max_accuracy_drop, job.cfg.verbose, log,
                         time_limit=job.cfg.search_time, baseline=(base_loss, base_fid),
                         candidate_s=baseline.metrics.get("convert_s"))
    start = Trial(0, 0, base_loss, base_fid, baseline.bytes, None, True)
    info = {"fits": res.fits, "best_loss": res.loss, "tried": [list(t) for t in res.tried], "seconds": round(res.seconds, 1),
            "ranked_on": res.ranked_on, "time_limit": job.cfg.search_time, "stopped": res.stopped, "metric": ("kl" if baseline.metrics.get("kl") is not None else
                       f"{baseline.metrics['task_metric']} fidelity" if baseline.metrics.get("task_metric") else "nsr"),
            "baseline": baseline.name, "trials": [t.to_dict() for t in res.trials],
            "latency_on": f"board {job.cfg.board} (predicted)" if job.cfg.board else "workstation",
            "pareto": [t.to_dict() for t in res.pareto(start)], "layers": [e.to_dict() for e in res.layers[:12]]}
    log(f"int8-selective: {len(res.trials)} candidate(s) in {res.seconds:.0f}s, stopped at {res.stopped}")
    if res.model is None and not res.trials:
        log(f"int8-selective: no candidate was evaluated before the time limit ({job.cfg.search_time:g}s); "
            f"{baseline.name} stays the best integer variant (give the search more time to try one)")
        return None, info
    if res.model is None:
        lines = [f"    {e.channel_nsr:10.4f}  {e.rmse_scale:8.3f}  {e.op:16s} {e.tensor[:70]}" for e in res.layers[:12]]
        log(f"int8-selective: no mix of int8 and float layers is better than {baseline.name}; per-layer quantization "
            "error, worst first:\n    chan-NSR    rmse/s    op               tensor\n" + "\n".join(lines))
        return None, info
    info["float_ops"] = list(res.denylist)
    extra = {"float_ops": list(res.denylist), "selective_tried": [list(t) for t in res.tried], "base": baseline.name}
    variant = job.validate("int8-selective", "int8-selective", res.model, time.perf_counter() - t0, [], extra)
    return variant, info


def _qat(job, base: Any, best: B.Variant, int8: B.Variant, info: dict | None,
         log: Log) -> tuple[B.Variant | None, dict[str, Any], Any]:
    """int8-qat: fine-tune ``base`` with simulated int8 (the float model as teacher, labels when the calibration
    images have them), convert integer-only; kept when its fidelity beats ``best`` (the best integer variant)."""
    from ..tflite.fidelity import fidelity_loss

    info = info or {"steps": [{"step": "int8", "applied": True, "bytes": int8.bytes,
                               **_picked(int8.metrics)}], "kept": None}
    calib = job.data.calib
    labels = calib.y if job.classification and calib.y is not None else None
    log(f"int8-qat: fine-tuning up to {job.cfg.qat_epochs} epoch(s) within {job.cfg.qat_time:g}s on {len(calib)} "
        f"calibration images ({'labels and ' if labels is not None else ''}the float model as teacher; --qat-time, --no-qat)")
    t0 = time.perf_counter()
    res = qat_isolated(job, base, calib.x, labels, log)
    entry = {"step": "QAT", "applied": res.applied, "seconds": round(time.perf_counter() - t0, 1), **res.detail}
    variant = None
    if not res.applied and res.detail.get("why"):
        log(f"int8-qat: not made: {res.detail['why']}")
    if res.applied:
        v = job.convert("int8-qat", "int8", res.model, {"qat": res.detail})
        if v.status is B.VariantStatus.OK:
            entry.update({"bytes": v.bytes, **_picked(v.metrics)})
            if fidelity_loss(v.metrics) < fidelity_loss(best.metrics):
                variant = v
            else:
                entry["why"] = f"not closer to Keras than {best.name}: not kept"
                (job.tmp / v.file).unlink(missing_ok=True)
            log(f"int8-qat: {_step_line(entry)} after {entry['seconds']:g}s ({res.detail.get('stopped', '')})"
                + (f"; {entry['why']}" if entry.get("why") else ""))
        else:
            entry.update(applied=False, why=v.reason)
    info = {**info, "steps": [*info["steps"], entry]}
    if variant is not None:
        info["qat_kept"] = "int8-qat"
    return variant, info, res.model


QAT_TIMEOUT_S = 4 * 3600


def qat_isolated(job, base: Any, x, labels, log: Log):
    """qat_finetune in a fresh process (:mod:`.qat_child`): a heap that only TensorFlow has used, memory given
    back at the end, and a native crash there is int8-qat's failure, not convert's. A model the child cannot
    load (a class defined only in the caller's script, given as an object) is fine-tuned here instead."""
    import tempfile

    import numpy as np

    from keras_edge.device.engine.launcher import run_child

    from ..tflite.ptq import clone
    from .qat import QatResult, qat_finetune

    with tempfile.TemporaryDirectory(prefix="keras-edge-qat-") as tmp:
        model_path, data, weights = Path(tmp) / "base.keras", Path(tmp) / "data.npz", Path(tmp) / "weights.npz"
        try:
            base.save(model_path)
        except Exception as e:  # noqa: BLE001 - unsaveable models are fine-tuned in this process
            log(f"note: int8-qat fine-tunes in this process: the model cannot be saved for a child ({type(e).__name__})")
            return qat_finetune(base, x, labels, epochs=job.cfg.qat_epochs, seed=job.cfg.seed, log=log,
                                time_limit=job.cfg.qat_time)
        np.savez(data, x=x, **({"y": labels} if labels is not None else {}))
        req = {"model": str(model_path), "data": str(data), "epochs": job.cfg.qat_epochs, "seed": job.cfg.seed,
               "time_limit": job.cfg.qat_time,
               "imports": list(job.cfg.imports), "safe_mode": job.cfg.safe_mode, "out_weights": str(weights)}
        res = run_child("keras_edge.host.convert.qat_child", req, timeout=QAT_TIMEOUT_S)
        if res.data is not None:
            for line in res.data.get("log", []):
                log(line)
            if not res.data.get("applied"):
                return QatResult(base, False, res.data.get("detail", {}))
            with np.load(weights, allow_pickle=False) as w:
                arrays = [w[f"w{i}"] for i in range(len(w.files))]
            student = clone(base)
            student.set_weights(arrays)
            return QatResult(student, True, res.data.get("detail", {}))
    if res.signal is not None or res.timed_out:
        why = (f"the fine-tuning process did not finish in {QAT_TIMEOUT_S}s" if res.timed_out else
               f"the fine-tuning process died of signal {res.signal} ({_signal_name(res.signal)}): {res.last_error_line}")
        return QatResult(base, False, {"why": why})
    if "could not be loaded" in res.stderr or "Could not locate" in res.stderr or "Unknown layer" in res.stderr:
        log("note: int8-qat fine-tunes in this process: a fresh one cannot load the model's classes")
        return qat_finetune(base, x, labels, epochs=job.cfg.qat_epochs, seed=job.cfg.seed, log=log,
                            time_limit=job.cfg.qat_time)
    return QatResult(base, False, {"why": f"the fine-tuning process failed: {res.last_error_line}"})


def _signal_name(sig: int) -> str:
    import signal

    try:
        return signal.Signals(sig).name
    except ValueError:
        return "unknown"


def _ptq(job, int8: B.Variant, log: Log) -> tuple[B.Variant | None, dict[str, Any], Any]:
    """int8-ptq: cross-layer equalization, range setting, then bias correction on the Keras model (each verified in float),
    converted integer-only; kept when its fidelity beats plain int8. Returns (variant, steps, its Keras model)."""
    from ..tflite import ptq
    from ..tflite.fidelity import fidelity_loss
    from ..tfenv import captured_output

    from ..tflite.variants import op_counts

    x = job.data.calib.x
    steps = [{"step": "int8", "applied": True, "bytes": int8.bytes, **_picked(int8.metrics)}]
    graph = op_counts((job.tmp / int8.file).read_bytes())
    candidates: list[tuple[B.Variant, Any, int]] = []
    model = job.model
    equalizations = (("balanced", partial(ptq.equalize, balance=True)),
                     ("activations first", partial(ptq.equalize, balance=False)))
    for label, fns, fname in (("equalization", equalizations, "int8-ptq-eq"),
                              ("range setting", (("", ptq.clip_ranges),), "int8-ptq-clip"),
                              ("bias correction", (("", ptq.bias_correct),), "int8-ptq-bc")):
        tried = []   # a step with alternatives (equalization: balanced, or activations first) keeps the closer one
        for k, (setting, fn) in enumerate(fns):
            t0 = time.perf_counter()
            what = f"{label} ({setting})" if setting else label
            log(f"  int8-ptq: {what} on {len(x)} calibration images …")   # a large model takes minutes here
            with captured_output(not job.cfg.verbose):
                step = fn(model, x)
            entry = {"step": label, "applied": step.applied, "seconds": round(time.perf_counter() - t0, 2), **step.detail}
            v = None
            if step.applied:
                v = job.convert(f"{fname}{'-' + str(k) if k else ''}", "int8", step.model)
                added = _added_ops(graph, op_counts((job.tmp / v.file).read_bytes())) if v.file else ""
                if v.status is B.VariantStatus.OK and not added:
                    entry.update({"bytes": v.bytes, **_picked(v.metrics)})
                else:   # a step that adds ops runs other (often unaccelerated) kernels: int8-ptq keeps int8's graph
                    entry.update(applied=False, why=f"adds ops to the int8 graph ({added}): not used" if added else v.reason,
                                 **(_picked(v.metrics) if v.status is B.VariantStatus.OK else {}))
                    if v.file:
                        (job.tmp / v.file).unlink(missing_ok=True)
                    v = None
            tried.append((entry, v, step.model))
        ok = [t for t in tried if t[1] is not None]
        entry, v, stepped = min(ok, key=lambda t: fidelity_loss(t[1].metrics)) if ok else tried[0]
        for _, other, _ in ok:
            if other is not v:
                (job.tmp / other.file).unlink(missing_ok=True)
        if len(tried) > 1:
            entry["alternatives"] = [{k: t[0].get(k) for k in ("balance", "applied", "kl", "kl_bare", "agreement", "why")
                                      if k in t[0]} for t in tried]
        if v is not None:
            model = stepped
            candidates.append((v, model, len(steps)))
        log(f"  int8-ptq: {label}: " + (_step_line(entry) if entry["applied"] else f"not applied ({entry.get('why', '')})"))
        steps.append(entry)
    info = {"steps": steps, "kept": None}
    best = min(candidates, key=lambda c: fidelity_loss(c[0].metrics), default=None)
    for v, _, _ in candidates:
        if best is None or v is not best[0]:
            (job.tmp / v.file).unlink(missing_ok=True)
    if best is None or fidelity_loss(best[0].metrics) >= fidelity_loss(int8.metrics):
        info["why"] = "no step brought the integer model closer to Keras than plain int8"
        return None, info, job.model
    v, model, upto = best
    (job.tmp / v.file).rename(job.tmp / "int8-ptq.tflite")
    applied = [s["step"] for s in steps[1:upto + 1] if s["applied"]]
    v = replace(v, name="int8-ptq", mode="int8-ptq", file="int8-ptq.tflite", metrics={**v.metrics, "ptq_steps": applied})
    info["kept"] = "int8-ptq"
    return v, info, model


def _added_ops(before: dict[str, int], after: dict[str, int]) -> str:
    """Ops the step's graph has more of than plain int8's, as text ('' when none)."""
    more = {k: n - before.get(k, 0) for k, n in after.items() if n > before.get(k, 0)}
    return ", ".join(f"{k} x{n}" for k, n in sorted(more.items()))
