"""The bundle's report: ``report.json`` for tools and ``report.md`` for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from keras_edge.device.bundle import REPORT_JSON, REPORT_MD

COLUMNS = ("variant", "status", "size", "accuracy", "drop", "agreement", "max err", "p50 ms", "convert s")


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
    if kind == "e":
        return f"{v:.2e}"
    return str(v)


def rows(report: dict[str, Any]) -> list[list[str]]:
    """One row of text cells per variant, in COLUMNS order."""
    out = []
    for r in report["variants"]:
        m = r.get("metrics", {})
        status = r["status"] + ("*" if r["name"] == report.get("default") else "")
        out.append([r["name"], status, _fmt(r.get("bytes") or None, "kib"), _fmt(m.get("accuracy"), "pct"),
                    _fmt(m.get("accuracy_drop"), "pp"), _fmt(m.get("agreement"), "pct"),
                    _fmt(m.get("max_abs_err"), "e"), _fmt(m.get("latency_ms"), "f3"), _fmt(r.get("convert_s"), "f3")])
    return out


def table(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    body = rows(report)
    widths = [max(len(c), *(len(row[i]) for row in body)) for i, c in enumerate(COLUMNS)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(COLUMNS), line(["-" * w for w in widths]), *map(line, body)])


def markdown(report: dict[str, Any]) -> str:
    k = report.get("keras", {})
    lines = [f"# {report.get('name', 'bundle')}", ""]
    if k.get("accuracy") is not None:
        lines.append(f"Keras model: accuracy {k['accuracy'] * 100:.2f}% on {k['eval_samples']} held-out samples; "
                     f"{k['calib_samples']} calibration samples.")
        lines.append("")
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(report)]
    lines += ["", f"`*` default variant: **{report.get('default')}** — {report.get('default_reason', '')}", ""]
    failed = [r for r in report["variants"] if r["status"] != "ok"]
    if failed:
        lines.append("Not ok:")
        lines += [f"- `{r['name']}` ({r['status']}): {r.get('reason') or 'no reason recorded'}" for r in failed]
        lines.append("")
    for note in report.get("notes", []):
        lines.append(f"- note: {note}")
    lines.append("")
    lines.append("Latency: median of `invoke` on the workstation CPU (LiteRT, XNNPACK), batch 1.")
    return "\n".join(lines) + "\n"


def write_report(directory: str | Path, report: dict[str, Any]) -> None:
    """Write report.json and report.md into a bundle directory being built."""
    d = Path(directory)
    data = {k: v for k, v in report.items() if k != "bundle"}
    (d / REPORT_JSON).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (d / REPORT_MD).write_text(markdown(data), encoding="utf-8")
