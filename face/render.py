"""Text for people: how run results, verify reports, bench tables and doctor reports are printed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # each command imports only what it renders
    from keras_edge.device.bench import BenchReport
    from keras_edge.device.run import Result, Summary
    from keras_edge.device.health import VerifyReport


def result_line(r: Result) -> str:
    if not r.ok:
        return f"{r.source}: skipped: {r.error}"
    if r.top is not None:
        preds = "  ".join(f"{p.label if p.label is not None else f'class {p.index}'} {p.score:.3f}" for p in r.top)
        return f"{r.source}: {preds}  ({r.infer_ms:.2f} ms)"
    if r.task is not None:
        return f"{r.source}: {task_text(r)}  ({r.infer_ms:.2f} ms + {r.postprocess_ms:.2f} ms postprocessing)"
    outs = "; ".join(f"{o['name']} {o['shape']} [{o['min']:.4g}, {o['max']:.4g}]"
                     + (f" → {o['file']}" if "file" in o else "") for o in r.outputs or [])
    return f"{r.source}: {outs}  ({r.infer_ms:.2f} ms)"


def _class_name(c: int, labels: Any) -> str:
    return labels[c] if labels is not None and 0 <= c < len(labels) else f"class {c}"


def _values(v: Any) -> str:
    if isinstance(v, dict):
        return f"{v['shape']} [{v['min']:.4g}, {v['max']:.4g}]"
    flat = []

    def walk(x: Any) -> None:
        if isinstance(x, list):
            for y in x:
                walk(y)
        else:
            flat.append(x)
    walk(v)
    shown = ", ".join(f"{x:.4g}" for x in flat[:8])
    return f"[{shown}{', ...' if len(flat) > 8 else ''}]"


def task_text(r: Result) -> str:
    """A task result in one line: boxes with labels and scores, mask class areas, embedding matches, values."""
    t = r.task
    if t.detections is not None:
        if not t.detections:
            return "no objects"
        boxes = ", ".join(f"{d.label or _class_name(d.class_id, r.labels)} {d.score:.2f} "
                          f"[{','.join(str(int(round(v))) for v in d.box)}]" for d in t.detections)
        return f"{len(t.detections)} object{'s' if len(t.detections) != 1 else ''}: {boxes}"
    if t.class_areas is not None:
        areas = sorted(t.class_areas.items(), key=lambda kv: -kv[1])
        return "mask: " + ", ".join(f"{_class_name(c, r.labels)} {100 * f:.1f}%" for c, f in areas)
    if t.embedding is not None:
        text = f"embedding {t.embedding.size}-d"
        if t.matches:
            text += ": " + ", ".join(f"{n} {s:.3f}" for n, s in t.matches[:3])
        return text
    if t.named is not None:
        d = t.to_dict()["outputs"]
        return "; ".join(f"{k} {_values(v)}" for k, v in d.items())
    return str(t.task)


def summary_line(s: Summary) -> str:
    ok = s.inputs - s.failed
    workers = f"{s.workers} decode worker{'' if s.workers == 1 else 's'}{' + the consumer' if s.helping else ''}"
    threads = f"{s.threads} interpreter thread{'' if s.threads == 1 else 's'}"
    text = (f"{s.target}: {ok}/{s.inputs} inputs ran on {s.backend} ({s.runtime}, {threads}, {workers}, "
            f"{s.cores} cores), inference {s.infer_ms_mean:.2f} ms mean, {s.fps:.1f} inputs/s overall")
    if s.postprocess_ms_mean:
        text += f"; postprocessing {s.postprocess_ms_mean:.2f} ms mean"
    if s.frames:
        text += f"; {s.frames} frames, {s.dropped} dropped"
    if s.live and s.latency_ms_p50 is not None:
        text += (f"; live: {s.fps:.1f} frames/s processed, latency capture to result p50 {s.latency_ms_p50:.1f} ms, "
                 f"p99 {s.latency_ms_p99:.1f} ms")
    if s.failed:
        text += f"; {s.failed} skipped"
    return text


def verify_lines(rep: VerifyReport) -> list[str]:
    lines = [f"bundle {rep.name} ({rep.bundle}) on {rep.runtime}"]
    for c in rep.checks:
        nums = ""
        if c.max_abs is not None:
            nums = f"max_abs {c.max_abs:.3g}"
            if c.outputs:   # several outputs: each one's error against its own bound
                nums += " (" + ", ".join(f"{o['name']} {o['max_abs']:.3g}/{o['bound']:.3g}" for o in c.outputs) + ")"
            if c.agreement is not None:
                nums += f", top-1 agreement {c.agreement:.0%}"
            nums += f" over {c.samples} samples on {c.backend}; "
        lines.append(f"  {c.variant:<18} {str(c.verdict).upper():<8} {nums}{c.message}")
    lines += [f"  problem: {p}" for p in rep.problems]
    if rep.adapter:
        from keras_edge.device.engine import Adapter

        used = "ran on" if rep.adapter.get("adapter_used") else "declined"
        lines.append(f"gpu adapter ({used}): {Adapter.from_dict(rep.adapter).describe()}")
    lines += [f"note: {n}" for n in dict.fromkeys(n for c in rep.checks for n in c.notes)]
    return lines


def verify_failure(rep: VerifyReport) -> str:
    from keras_edge.device.health import Verdict

    bad = [c.message if c.message.startswith(f"variant {c.variant!r}") else f"variant {c.variant!r}: {c.message}"
           for c in rep.checks if c.verdict is Verdict.FAIL]
    return "verify failed: " + "; ".join(bad + rep.problems)


_COLUMNS = (("variant", "variant", "{}"), ("threads", "thr", "{}"), ("backend", "backend", "{}"),
            ("median_ms", "median ms", "{:.3f}"), ("p90_ms", "p90 ms", "{:.3f}"), ("p99_ms", "p99 ms", "{:.3f}"),
            ("min_ms", "min ms", "{:.3f}"), ("std_ms", "std ms", "{:.3f}"), ("mean_ms", "mean ms", "{:.3f}"),
            ("throughput_ips", "inf/s", "{:.1f}"),
            ("init_ms", "init ms", "{:.1f}"), ("first_ms", "first ms", "{:.2f}"), ("rss_mb", "RSS MB", "{:.1f}"),
            ("bytes", "size KB", None))


def bench_table(rep: BenchReport) -> list[str]:
    rows = [[h for _, h, _ in _COLUMNS]]
    for r in rep.results:
        d = r.__dict__
        rows.append([f"{d['bytes'] / 1024:.1f}" if fmt is None else fmt.format(d[k]) for k, _, fmt in _COLUMNS])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if i > 2 else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) for row in rows]
    lines.append("inf/s = 1000 / mean ms: invokes one after another on one caller thread (a slow outlier lowers it, "
                 "the median ignores it)")
    for r in rep.results:
        if r.e2e:
            lines.append(e2e_line(f"{r.variant}, {r.threads} threads", r.e2e))
        lines += [f"note ({r.variant}, {r.accelerator}): {n}" for n in dict.fromkeys(r.notes)]
    return lines + gpu_lines(rep) + environment_lines(rep.environment)


def gpu_lines(rep: BenchReport) -> list[str]:
    """The adapter, named with its kind, and GPU against CPU for each variant measured on both."""
    from keras_edge.device.engine import Adapter

    lines = [f"adapter: {Adapter.from_dict(a).describe()}"
             for a in {json_key(r.adapter): r.adapter for r in rep.results if r.adapter}.values()]
    if any(r.backend.startswith("gpu") for r in rep.results):
        lines.append("gpu timings include completion: every timed invoke reads the outputs")
    pairs: dict[tuple[str, int], dict[bool, Any]] = {}
    for r in rep.results:
        pairs.setdefault((r.variant, r.threads), {})[r.backend.startswith("gpu")] = r
    for (variant, threads), p in pairs.items():
        if True in p and False in p:
            g, c = p[True], p[False]
            faster = (f"the GPU path is {c.median_ms / g.median_ms:.2f}x as fast" if g.median_ms < c.median_ms
                      else f"the CPU is {g.median_ms / c.median_ms:.1f}x faster")
            lines.append(f"{variant}, {threads} threads: {g.backend} median {g.median_ms:.3f} ms (init {g.init_ms:.0f} ms, "
                         f"RSS {g.rss_mb:.0f} MB) vs {c.backend} {c.median_ms:.3f} ms (init {c.init_ms:.0f} ms, "
                         f"RSS {c.rss_mb:.0f} MB): {faster}")
    return lines


def json_key(d: dict[str, Any]) -> str:
    import json

    return json.dumps(d, sort_keys=True)


def e2e_line(variant: str, e: dict[str, Any]) -> str:
    f = e["full"]
    text = (f"end to end ({variant}, {e['image']}): {f['total_ms']:.2f} ms per image = decode {f['decode_ms']:.2f} + "
            f"preprocess {f['preprocess_ms']:.2f} + inference {f['infer_ms']:.2f}")
    if "reduced" in e:
        r = e["reduced"]
        text += (f"; reduced JPEG decode 1/{e['reduce_factor']}: {r['total_ms']:.2f} ms, input differs by up to "
                 f"{r['max_error']:.4g} (tolerance {r['tolerance']:g}: {'within' if r['within_tolerance'] else 'beyond'})")
    return text


def environment_lines(env: dict[str, Any]) -> list[str]:
    cpu = env["cpu"]
    lines = [f"machine: {cpu['board'] + ', ' if cpu.get('board') else ''}{cpu['model']} ({env['arch']}), "
             f"{env['cores']['usable']} cores, {env['os']}, Python {env['python']}, numpy {env['numpy']}",
             f"cpu features: {', '.join(cpu['features']) or 'none detected'}",
             f"runtime: {env['runtime']}, governor: {env['governor'] or 'n/a'}, "
             f"temperature: {str(env['temperature_c']) + ' °C' if env['temperature_c'] is not None else 'n/a'}"]
    t = env.get("throttling")
    if t:
        state = "THROTTLED NOW: " if t["throttled_now"] else ""
        lines.append(f"throttling: {state}{t['value']} {', '.join(t['flags']) or 'none'}")
    return lines


def doctor_gpu_lines(g: dict[str, Any]) -> list[str]:
    """The GPU verdict, never calling a software adapter a GPU, then each missing piece with its fix."""
    from keras_edge.device.engine import Adapter

    a = Adapter.from_dict(g["adapter"]) if g.get("adapter") else None
    if g["available"] and a is not None and a.is_software:
        lines = [f"gpu: no GPU; {g['backend']} runs on {a.describe()} (max difference from CPU "
                 f"{g['max_abs_vs_cpu']:.2g}); --accelerator auto uses the CPU"]
    elif g["available"]:
        on = a.describe() if a else "an adapter it did not name"
        lines = [f"gpu: {g['backend']} works on {on} (max difference from CPU {g['max_abs_vs_cpu']:.2g})"]
    else:
        lines = [f"gpu: not available ({g['reason']})"]
    for v in g.get("vulkan") or []:
        lines.append(f"  vulkan device: {v['name']} (type {v['type']}), driver {v.get('driver')} {v.get('driver_info') or ''}, "
                     f"Vulkan {v['api_version']}")
    if g.get("vulkan_error"):
        lines.append(f"  vulkan: {g['vulkan_error']}")
    for c in g.get("checks", []):
        lines.append(f"  {'ok ' if c['ok'] else 'no '} {c['item']}: {c['detail']}" + ("" if c["ok"] else f" → {c['fix']}"))
    return lines


def doctor_lines(d: dict[str, Any]) -> list[str]:
    lines = ["runtimes:"]
    for r in d["runtimes"]:
        state = f"ok {r['version']}" if r["usable"] else (r["error"] or "unusable")
        fix = f" → {r['fix']}" if r.get("fix") and not r["usable"] and r["installed"] else ""
        lines.append(f"  {r['name']:<16} {state}{fix}")
    lines.append(f"selected: {d['selected_runtime'] or 'none'}")
    lines += environment_lines(d["system"])
    cv = d["opencv"]
    lines.append(f"opencv: {cv['version'] if cv['installed'] else 'not installed → ' + cv['fix']}")
    cams = d["cameras"]
    lines.append("cameras: " + (", ".join(f"{c['device']} ({'opens' if c['opens'] else 'does not open'})" for c in cams)
                                if cams else "none found"))
    lines += doctor_gpu_lines(d["gpu"])
    tf = d.get("tensorflow")
    if tf:
        gpus = ", ".join(x["name"] for x in tf["gpus"]) or "no GPUs visible"
        lines.append(f"tensorflow: {tf['version']} ({gpus})")
    return lines
