"""The report's board view: per variant, the workstation's latency, the named board kind's prediction (with its
error band) and what boards measured; and the per-op profiles boards sent back (``profile --on``)."""

from __future__ import annotations

from typing import Any


def latencies(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per validated variant: workstation p50, predicted board p50 and band, measured board p50."""
    target = report.get("target") or {}
    measured: dict[str, tuple[str, float]] = {}
    for key, run in sorted(report.get("boards", {}).items(), key=lambda kv: kv[1].get("measured", "")):
        best: dict[str, tuple[int, float]] = {}
        for r in run.get("bench", {}).get("results", []):
            if r.get("median_ms") and not r.get("error"):
                t = int(r.get("threads") or 0)
                if r["variant"] not in best or t > best[r["variant"]][0]:
                    best[r["variant"]] = (t, float(r["median_ms"]))
        measured.update({v: (run.get("fingerprint", key), ms) for v, (_, ms) in best.items()})   # the latest wins
    out = []
    for r in report.get("variants", []):
        m = r.get("metrics", {})
        if r.get("status") != "ok":
            continue
        pred = m.get("board") or {}
        out.append({"variant": r["name"], "workstation_ms": m.get("latency_ms"), "predicted_ms": pred.get("ms"),
                    "low_ms": pred.get("low_ms"), "high_ms": pred.get("high_ms"), "board": pred.get("board"),
                    "measured_ms": measured.get(r["name"], (None, None))[1],
                    "measured_on": measured.get(r["name"], (None, None))[0], "default": r["name"] == report.get("default")})
    return out


def markdown_lines(report: dict[str, Any]) -> list[str]:
    rows = latencies(report)
    target = report.get("target") or {}
    if not rows or not (target.get("board") or any(r["measured_ms"] for r in rows)):
        return []
    kind = target.get("board")
    lines = ["", "## Latency on the target", "",
             f"The default was chosen on: **{target.get('basis', 'workstation')}**"
             + (f" (board kind `{kind}`: {target.get('name')}; cost table basis {target.get('table_basis')}, "
                f"error band ±{target.get('band', 0):.0%}" + (f", refined on {target['refined_on_runs']} bench --on run(s)"
                                                              if target.get("refined_on_runs") else "") + ")" if kind else "")
             + ".", "",
             f"| variant | workstation p50 ms | predicted {kind or 'board'} p50 ms (band) | measured board p50 ms |",
             "|---|---|---|---|"]
    for r in rows:
        pred = (f"{r['predicted_ms']:.2f} ({r['low_ms']:.2f}–{r['high_ms']:.2f})" if r["predicted_ms"] is not None else "—")
        meas = f"{r['measured_ms']:.3f} ({r['measured_on']})" if r["measured_ms"] is not None else "—"
        ws = f"{r['workstation_ms']:.3f}" if r["workstation_ms"] is not None else "—"
        name = f"**{r['variant']}** (default)" if r["default"] else r["variant"]
        lines.append(f"| {name} | {ws} | {pred} | {meas} |")
    return lines


def profile_lines(report: dict[str, Any], top: int = 5) -> list[str]:
    """The slowest ops of each profile a board sent back (per board kind and variant)."""
    lines: list[str] = []
    for key, run in sorted((report.get("profiles") or {}).items()):
        p = run.get("profile", {})
        rows = sorted(p.get("rows", []), key=lambda r: -(r.get("ms") or 0.0))[:top]
        if not rows:
            continue
        lines += ["", f"### Profile on {key} (measured {run.get('measured', '?')})", "",
                  f"{p.get('runtime')}, {p.get('threads')} thread(s): whole model {p.get('whole_ms') or 0:.3f} ms, "
                  f"XNNPACK runs {p.get('xnnpack_ops')} of {p.get('ops')} ops.", "",
                  "| # | op | ms | share | XNNPACK |", "|---|---|---|---|---|"]
        lines += [f"| {r['index']} | {r['op']} | {r.get('ms') or 0:.4f} | {(r.get('share') or 0) * 100:.1f}% | "
                  f"{'yes' if r['xnnpack'] else 'no: ' + r.get('why_not', '')} |" for r in rows]
    return lines


def panel(ax: Any, report: dict[str, Any]) -> bool:
    """Bars per variant: workstation, predicted board (whiskers: the band), measured board. False when nothing to show."""
    rows = latencies(report)
    if not rows or not any(r["predicted_ms"] is not None or r["measured_ms"] is not None for r in rows):
        return False
    import numpy as np

    y = np.arange(len(rows))
    h = 0.27
    ax.barh(y - h, [r["workstation_ms"] or 0 for r in rows], h, color="tab:gray", label="workstation")
    pred = [r["predicted_ms"] or 0 for r in rows]
    err = [[max(0.0, p - (r["low_ms"] or p)) for p, r in zip(pred, rows)],
           [max(0.0, (r["high_ms"] or p) - p) for p, r in zip(pred, rows)]]
    kind = (report.get("target") or {}).get("board") or "board"
    ax.barh(y, pred, h, xerr=err, color="tab:blue", label=f"predicted {kind}", error_kw={"elinewidth": 0.8})
    ax.barh(y + h, [r["measured_ms"] or 0 for r in rows], h, color="tab:orange", label="measured board")
    ax.set_yticks(y, [r["variant"] + (" *" if r["default"] else "") for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("p50 ms (* default)")
    ax.set_title(f"p50 here / on the board\n(default chosen on: {(report.get('target') or {}).get('basis', 'workstation')})",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return True
