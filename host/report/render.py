"""The bundle's report for people: a terminal table, ``report.md`` and ``report.png``.

Rendering reads the dict view of a :class:`~.contract.Report` (``report.to_dict()``); only
:mod:`.contract` writes ``report.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keras_edge.device.contract import REPORT_MD
from keras_edge.device.contract.files import replace_file

from .contract import Report, write_report_json

COLUMNS = ("variant", "status", "size", "gzip", "accuracy", "drop", "agreement (95% CI)", "KL", "max err", "p50 ms",
           "p50 ms 1T", "vs keras", "convert s")
# detection / segmentation: the task metric (through the board's postprocessing) replaces top-1 columns
TASK_COLUMNS = {
    "map50_95": ("variant", "status", "size", "gzip", "mAP@0.5", "mAP@0.5:0.95", "drop", "fidelity", "max err",
                 "p50 ms", "p50 ms 1T", "post ms", "vs keras", "convert s"),
    "miou": ("variant", "status", "size", "gzip", "mIoU", "pixel acc", "drop", "fidelity", "max err",
             "p50 ms", "p50 ms 1T", "post ms", "vs keras", "convert s"),
}


# raw outputs (no classes, no task metric): fidelity to Keras in the outputs' own terms
RAW_COLUMNS = ("variant", "status", "size", "gzip", "rel err", "SNR dB", "map F1", "map IoU", "max err", "p50 ms",
               "p50 ms 1T", "vs keras", "convert s")


def raw(report: dict[str, Any]) -> bool:
    """Outputs reported raw: no accuracy, no agreement and no task metric in any variant."""
    ms = [r.get("metrics", {}) for r in report.get("variants", []) if r.get("status") == "ok"]
    return (bool(ms) and report.get("keras", {}).get("accuracy") is None and not task_metric(report)
            and all(m.get("agreement") is None for m in ms))


def task_metric(report: dict[str, Any]) -> str | None:
    """The report's task metric (``map50_95`` or ``miou``), None for classifiers and raw outputs."""
    return report.get("keras", {}).get("task_metric") or next(
        (r.get("metrics", {}).get("task_metric") for r in report.get("variants", []) if r.get("metrics", {}).get("task_metric")), None)


def columns(report: dict[str, Any]) -> tuple[str, ...]:
    return RAW_COLUMNS if raw(report) else TASK_COLUMNS.get(task_metric(report) or "", COLUMNS)


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "—"
    if kind == "pct":
        return f"{v * 100:.2f}%"
    if kind == "pp":
        return f"{v * 100 + 0.0:.2f} pp"
    if kind == "kib":
        return f"{v / 1024:.1f} KiB" if v < 1 << 20 else f"{v / (1 << 20):.2f} MiB"
    if kind == "f3":
        return f"{v:.3f}"
    if kind == "f1":
        return f"{v:.1f}"
    if kind == "e":
        return f"{v:.2e}"
    return str(v)


def _with_ci(v: float | None, ci: list[float] | None) -> str:
    if v is None:
        return "—"
    return f"{v * 100:.2f}%" + (f" ({ci[0] * 100:.1f}–{ci[1] * 100:.1f})" if ci else "")


def _step_note(st: dict[str, Any]) -> str:
    if not st.get("applied"):
        return ""
    if "pairs" in st:
        how = {True: "balanced with the weights; ", False: "activations first; "}.get(st.get("balance"), "")
        streams = f", {st['streams']} residual stream(s)" if st.get("streams") else ""
        return (f"{how}{st['pairs']} pair(s){streams}; activation range spread "
                f"{st['range_spread_before']}→{st['range_spread_after']}")
    if "capped" in st:
        return f"{st['capped']} ReLU(s) capped at the {st['percentile']} percentile (range ÷{st['median_range_shrink']})"
    if "max_shift" in st:
        return f"{st['layers']} layer(s); int8-weight KL {st['weight_quant_kl_before']:.1e}→{st['weight_quant_kl_after']:.1e}"
    if "epochs" in st:
        return f"{st['epochs']} epoch(s) on {st['samples']} images, {st['seconds']}s"
    return ""


def ptq_lines(report: dict[str, Any]) -> list[str]:
    """What each post-training step bought (int8-ptq), and the int8-selective search's Pareto set."""
    lines: list[str] = []
    ptq = report.get("ptq")
    if ptq:
        lines += ["", "## What each quantization step bought", "",
                  "| step | applied | agreement (95% CI) | accuracy | KL(Keras‖int8) | note |", "|---|---|---|---|---|---|"]
        for st in ptq.get("steps", []):
            note = st.get("why") or _step_note(st)
            lines.append(f"| {st['step']} | {'yes' if st.get('applied') else 'no'} | "
                         f"{_with_ci(st.get('agreement'), st.get('agreement_ci'))}{_bare(st, 'agreement')} | "
                         f"{_fmt(st.get('accuracy'), 'pct')} | {_fmt(st.get('kl'), 'e')}{_bare(st, 'kl')} | {note} |")
        lines += ["", f"Kept: `{ptq['kept']}` (integer-only, the steps applied above)" if ptq.get("kept")
                  else f"Kept nothing: {ptq.get('why', '')}"]
    sel = report.get("selective")
    if sel and sel.get("pareto"):
        lines += ["", f"int8-selective search: {len(sel.get('trials', []))} candidate(s) in {sel.get('seconds')}s "
                  f"(limit {sel.get('time_limit')}s), stopped at {sel.get('stopped')}; Pareto set (size, latency, "
                  f"{sel.get('metric')}); layers 0 = {sel.get('baseline')}:", "",
                  "| layers in float | ops | size | p50 ms | fidelity | loss |", "|---|---|---|---|---|---|"]
        lines += [f"| {t['layers']} | {t['ops']} | {_fmt(t['bytes'], 'kib')} | {_fmt(t.get('latency_ms'), 'f3')} | "
                  f"{t['fidelity']:.3g} | {t['loss'] * 100:.2f}% |" for t in sel["pareto"]]
    return lines


def _selective_outcome(sel: dict[str, Any]) -> str:
    """One line: what the int8-selective search found, including that it found nothing to evaluate."""
    if sel.get("fits"):
        return "fits the budget keeping these ops in float: " + ", ".join(f"`{o}`" for o in sel.get("float_ops", []))
    if sel.get("best_loss") is None:
        return (f"no candidate was evaluated: the search stopped at {sel.get('stopped') or 'its start'} "
                f"(limit {sel.get('time_limit')}s); give it more time (--search-time) to search")
    return f"nothing fits the budget (best loss {sel['best_loss']:.2%})"


def raw_legend(report: dict[str, Any]) -> list[str]:
    """What the raw-output columns mean, with the map threshold used."""
    k = report.get("keras", {})
    m = next((r["metrics"] for r in report["variants"] if r.get("metrics", {}).get("map_f1") is not None), None)
    lines = [f"The outputs are reported raw ({k.get('eval_samples', '?')} evaluation inputs): `rel err` is the relative "
             "RMS error of the variant's outputs against Keras's (the worst output; 1% is SNR 40 dB), `SNR dB` the "
             "signal-to-noise ratio with Keras's outputs as the signal."]
    if m:
        lines[0] += (f" `map F1` / `map IoU` compare the pixels above {m['map_threshold']:.4g} "
                     f"({m['map_threshold_kind']}) in the variant's map with those in Keras's, over all pixels.")
    return lines + [""]


def integer_lines(report: dict[str, Any]) -> list[str]:
    """What the integer route did when the converter left int8 ops in float (convert/integer.py)."""
    route = report.get("integer")
    if not route:
        return []
    lines = ["", "## Integer route", "", f"TensorFlow's converter left {', '.join(f'`{o}`' for o in route.get('float_ops', []))} "
             "in float under full int8."]
    for t in route.get("tried", []):
        if t["route"] == "rewrite":
            what = ", ".join(f"{n} {k}" for k, n in (t.get("rewrites") or {}).items())
            lines.append(f"- rewrite ({what or 'none'}): {t['status']}" + (f" ({t['reason']})" if t.get("reason") else ""))
        else:
            floats = t.get("float_ops")
            lines.append(f"- {t['route']}: {t['status']}" + (f", in float: {', '.join(f'`{o}`' for o in floats)}"
                                                              if floats else f" ({t.get('reason', '')})" if t.get("reason") else ""))
    if route.get("kept"):
        lines.append(f"\nKept: `{route['kept']}`" + (" (integer-only)" if route["kept"] == "int8" else
                                                     " (the ops above stay in float; compare its p50 with fp32 in the table)"))
    if route.get("next_step"):
        lines.append(f"\nNext step: {route['next_step']}")
    return lines


def speedup(report: dict[str, Any], metrics: dict[str, Any]) -> float | None:
    """How many times faster than Keras ``predict`` on one sample (both measured on the workstation)."""
    base = report.get("keras", {}).get("predict_ms")
    lat = metrics.get("latency_ms")
    return base / lat if base and lat else None


OVER_BUDGET = "over budget"


def status_of(r: dict[str, Any]) -> str:
    """A validated variant whose drop exceeds the budget shows `over budget`, not `ok` (the file's status stays ok)."""
    if r["status"] == "ok" and r.get("metrics", {}).get("within_budget") is False:
        return OVER_BUDGET
    return r["status"]


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row of text cells per variant, in :func:`columns` order."""
    out = []
    task = task_metric(report)
    is_raw = raw(report)
    for r in report["variants"]:
        m = r.get("metrics", {})
        status = status_of(r) + (" (default)" if r["name"] == report.get("default") else "")
        sp = speedup(report, m)
        if is_raw:
            out.append([r["name"], status, _fmt(r.get("bytes") or None, "kib"), _fmt(m.get("gzip_bytes"), "kib"),
                        _fmt(m.get("rel_err"), "pct"), _fmt(m.get("snr_db"), "f1"), _fmt(m.get("map_f1"), "f3"),
                        _fmt(m.get("map_iou"), "f3"), _fmt(m.get("max_abs_err"), "e"), _fmt(m.get("latency_ms"), "f3"),
                        _fmt(m.get("latency_by_threads", {}).get("1"), "f3"), f"{sp:.1f}x" if sp else "—",
                        _fmt(r.get("convert_s"), "f3")])
            continue
        if task:
            first, second = ("map50", "map50_95") if task == "map50_95" else ("miou", "pixel_accuracy")
            out.append([r["name"], status, _fmt(r.get("bytes") or None, "kib"), _fmt(m.get("gzip_bytes"), "kib"),
                        _fmt(m.get(first), "f3"), _fmt(m.get(second), "f3"), _fmt(m.get("metric_drop"), "pp"),
                        _fmt(m.get("task_fidelity"), "f3"), _fmt(m.get("max_abs_err"), "e"),
                        _fmt(m.get("latency_ms"), "f3"), _fmt(m.get("latency_by_threads", {}).get("1"), "f3"),
                        _fmt(m.get("postprocess_ms"), "f3"), f"{sp:.1f}x" if sp else "—", _fmt(r.get("convert_s"), "f3")])
            continue
        out.append([r["name"], status, _fmt(r.get("bytes") or None, "kib"), _fmt(m.get("gzip_bytes"), "kib"),
                    _fmt(m.get("accuracy"), "pct"),
                    _fmt(m.get("accuracy_drop"), "pp"), _with_ci(m.get("agreement"), m.get("agreement_ci")) + _bare(m, "agreement"),
                    _fmt(m.get("kl"), "e") + _bare(m, "kl"),
                    _fmt(m.get("max_abs_err"), "e"), _fmt(m.get("latency_ms"), "f3"),
                    _fmt(m.get("latency_by_threads", {}).get("1"), "f3"), f"{sp:.1f}x" if sp else "—",
                    _fmt(r.get("convert_s"), "f3")])
    return out


def _bare(m: dict[str, Any], key: str) -> str:
    """The other rounding order's value beside the runner's (a quantized input; decisions take the worse)."""
    v = m.get(f"{key}_bare")
    if v is None:
        return ""
    return f" (other rounding {_fmt(v, 'pct' if key == 'agreement' else 'e')})"


def _ws_latency(metrics: dict[str, Any], threads: Any) -> float | None:
    """The workstation's p50 at the board run's thread count when measured, else at all cores."""
    return metrics.get("latency_by_threads", {}).get(str(threads), metrics.get("latency_ms"))


def board_rows(report: dict[str, Any]) -> list[str]:
    """Markdown tables of board benchmarks stored by `keras-edge bench --on HOST`, one per board."""
    lines: list[str] = []
    ws = {r["name"]: r.get("metrics", {}) for r in report["variants"]}
    for fingerprint, entry in sorted(report.get("boards", {}).items()):
        bench = entry.get("bench", entry)
        env = bench.get("environment", {})
        lines += ["", f"### Board: {fingerprint}", "",
                  f"{env.get('runtime', '?')}, {(env.get('cpu') or {}).get('model', '?')} ({env.get('arch', '?')}), "
                  f"measured {entry.get('measured', '?')}", "",
                  "| variant | threads | backend | board p50 ms | workstation p50 ms (same threads) |", "|---|---|---|---|---|"]
        for r in bench.get("results", []):
            lines.append(f"| {r.get('variant')} | {r.get('threads')} | {r.get('backend')} | "
                         f"{_fmt(r.get('median_ms'), 'f3')} | {_fmt(_ws_latency(ws.get(r.get('variant'), {}), r.get('threads')), 'f3')} |")
    return lines


def pruning_rows(curve: dict[str, Any] | None) -> list[str]:
    """The budgeted pruning search's measured curve as a markdown table (chosen row in bold)."""
    if not curve:
        return []
    lines = ["", "## Pruning to the accuracy budget", "",
             f"Channel pruning levels measured on {curve.get('n_val')} validation images (±{curve.get('interval_pp', 0):.1f} pp "
             f"at 95%); speed-up is `unpruned ms` / `int8 ms`: the unpruned int8 model timed in the same rounds as "
             f"the level's, side by side (the machine's load moves both alike); "
             f"distillation: {curve.get('distill')}.", "",
             "| level | removed | params | FLOPs | int8 ms | unpruned ms | speed-up | int8 accuracy | pruning cost (int8 vs int8) | budget | epochs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    chosen = (curve.get("chosen") or {}).get("level")
    for p in [curve["base"], *curve.get("points", [])]:
        cells = [f"{p['level']:.0%}", f"{p['achieved']:.0%}", f"{p['params']:,}",
                 f"{p['flops']:,}" if p.get("flops") else "—", f"{p['int8_ms']:.3f}",
                 f"{p['base_ms']:.3f}" if p.get("base_ms") is not None else "—", f"{p['speedup']:.2f}x",
                 _fmt(p["int8_accuracy"], "pct"), f"{p['drop'] * 100:+.2f} pp", "ok" if p["within"] else "over",
                 str(p.get("epochs", 0))]
        if p["level"] and p["level"] == chosen:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", curve.get("verdict", "")]
    return lines


def table(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    body = rows(report)
    cols = columns(report)
    widths = [max(len(c), *(len(row[i]) for row in body)) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, body)])


# What each column means (report.md's legend; the README quotes the same words).
LEGEND = {
    "variant": "the TFLite file (`fp32` no quantization, `fp16` float16 weights, `dynamic` int8 weights with float "
               "activations, `int8` full integer calibrated on your images, `int16x8` 16-bit activations; "
               "`int8-ptq`/`-selective`/`-qat`/`-pruned-*` when the budget or a flag asks for them)",
    "status": "`ok`: converted, loaded in the board's runtime and validated, within the budget; `over budget`: "
              "validated, but its drop exceeds the budget, so it is reported and never chosen; `(default)`: what "
              "`run` uses; a failed status says why below the table",
    "size": "the .tflite file", "gzip": "the file compressed with gzip -9: what a download or an update moves "
                                        "(pruned zeros compress, so magnitude pruning shows here, not in speed)",
    "accuracy": "top-1 accuracy on the held-out evaluation images (never the calibration ones)",
    "drop": "the Keras model's accuracy (or task metric) minus the variant's, in percentage points (pp): the unit "
            "of the budget",
    "agreement (95% CI)": "how often the variant's top-1 class equals the Keras model's, with its 95% Wilson interval, "
                          "through the runner's input path; for a quantized input the other rounding order (zero-point "
                          "added before rounding, as a bare interpreter fed by hand) in brackets; decisions take the worse",
    "KL": "KL(Keras ‖ variant): mean Kullback–Leibler divergence of the variant's class probabilities from the "
          "Keras model's, in nats; 0 is identical, lower is closer",
    "max err": "the largest absolute difference between any output value of the variant and the Keras model's "
               "over the evaluation images (in the output's units; probabilities for a softmax classifier)",
    "mAP@0.5": "detection mean average precision at IoU 0.5", "mAP@0.5:0.95": "the same averaged over IoU 0.5 … 0.95",
    "mIoU": "mean intersection over union of the predicted masks", "pixel acc": "share of pixels with the right class",
    "fidelity": "the task metric of the variant scored against the Keras model's own postprocessed results (1: same)",
    "p50 ms": "median `invoke` time on the workstation's CPU (LiteRT, XNNPACK), batch 1, all cores",
    "p50 ms 1T": "the same on one thread", "post ms": "median postprocessing time per image (decode, NMS, mapping)",
    "vs keras": "Keras `predict` on one sample divided by `p50 ms`: how many times faster",
    "convert s": "seconds the conversion of this variant took",
}


def legend(report: dict[str, Any]) -> list[str]:
    """The columns of this report's table, each explained in a line."""
    return ["Columns:", ""] + [f"- `{c}`: {LEGEND[c]}" for c in columns(report) if c in LEGEND] + [""]


def markdown(report: dict[str, Any]) -> str:
    k = report.get("keras", {})
    lines = [f"# {report.get('name', 'bundle')}", ""]
    if k.get("accuracy") is not None:
        lines.append(f"Keras model: accuracy {k['accuracy'] * 100:.2f}% on {k['eval_samples']} held-out samples; "
                     f"{k['calib_samples']} calibration samples.")
        lines.append("")
    if task_metric(report) and k.get("task_metric"):
        if k.get("map50_95") is not None:
            lines += [f"Keras model: mAP@0.5 {k['map50']:.4f}, mAP@0.5:0.95 {k['map50_95']:.4f} on {k['eval_samples']} "
                      "annotated evaluation images (boxes through the board's postprocessing, mapped to each image).", ""]
        elif k.get("miou") is not None:
            lines += [f"Keras model: mean IoU {k['miou']:.4f}, pixel accuracy {k['pixel_accuracy']:.4f} on "
                      f"{k['eval_samples']} annotated evaluation images.", ""]
        lines += ["`drop` is the task metric's drop against Keras (without annotations: 1 − fidelity); `fidelity` is the "
                  "task metric of the variant scored against Keras's own postprocessed results; `post ms` is the "
                  "median postprocessing time per image (decode, NMS, mapping to the image).", ""]
    if raw(report):
        lines += raw_legend(report)
    cols = columns(report)
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    lines += ["", f"Default variant: **{report.get('default')}** — {report.get('default_reason', '')}", ""]
    if report.get("budget") is not None:
        lines += [f"Budget: a default may lose at most {report['budget'] * 100:.2f} pp (`--max-accuracy-drop "
                  f"{report['budget']:g}`); the signed figure after it in the line above is the default's own drop, "
                  "in the same unit. Variants over it are reported (status `over budget`), never chosen.", ""]
    failed = [r for r in report["variants"] if r["status"] != "ok"]
    if failed:
        lines.append("Not ok:")
        lines += [f"- `{r['name']}` ({r['status']}): {r.get('reason') or 'no reason recorded'}" for r in failed]
        lines.append("")
    lines += legend(report)
    for note in report.get("notes", []):
        lines.append(f"- note: {note}")
    verdicts = [(r["name"], r["metrics"]["verdict"]) for r in report["variants"] if r.get("metrics", {}).get("verdict")]
    unresolved = [(n, v) for n, v in verdicts if v.get("decision") == "cannot resolve"]
    for n, v in unresolved:
        lines.append(f"- `{n}`: {v['text']}")
    k_lat = f" Keras `predict` on one sample: {k['predict_ms']:.2f} ms; direct call: {k['call_ms']:.2f} ms." if k.get("predict_ms") else ""
    lines.append("")
    lines.append("Latency: median of `invoke` on the workstation CPU (LiteRT, XNNPACK), batch 1, all cores "
                 "(`p50 ms`) and one thread (`1T`); `vs keras` is Keras `predict` latency divided by `p50 ms`." + k_lat)
    lines += board_rows(report)
    from .board import markdown_lines, profile_lines

    lines += markdown_lines(report) + profile_lines(report)
    if report.get("selective"):
        sel = report["selective"]
        lines += ["", "## Selective int8", "",
                  _selective_outcome(sel),
                  "", "| tensor | op | channel NSR | rmse/scale |", "|---|---|---|---|"]
        lines += [f"| `{e['tensor'][:80]}` | {e['op']} | {e['channel_nsr']:.4f} | {e['rmse_scale']:.3f} |"
                  for e in sel.get("layers", [])]
    lines += integer_lines(report)
    lines += ptq_lines(report)
    lines += pruning_rows(report.get("pruning"))
    lines += ["", "![latency against accuracy](report.png)"]
    return "\n".join(lines) + "\n"


def write_report(directory: str | Path, report: Report) -> None:
    """Write report.json, report.md and report.png into a bundle directory (each file replaced atomically)."""
    d = Path(directory)
    write_report_json(d, report)
    data = report.to_dict()
    replace_file(d / REPORT_MD, markdown(data))
    from .plot import plot

    tmp = d / ".report.png.tmp"
    plot(data, tmp)
    tmp.replace(d / "report.png")

