"""report.png: latency against accuracy with the Pareto front and the default marked, and file sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def pareto(points: list[tuple[str, float, float]]) -> list[str]:
    """Names on the front of (latency lower is better, quality higher is better)."""
    front = []
    for name, lat, q in points:
        dominated = any((l2 <= lat and q2 >= q) and (l2 < lat or q2 > q) for _, l2, q2 in points)
        if not dominated:
            front.append(name)
    return front


def _pruning_panel(ax: Any, curve: dict[str, Any]) -> None:
    """The pruning search's curve: int8 speed-up against accuracy drop, the budget and the choice marked."""
    pts = [curve["base"], *curve.get("points", [])]
    ax.plot([p["speedup"] for p in pts], [p["drop"] * 100 for p in pts], "o-", c="tab:purple", ms=3, lw=1)
    chosen = curve.get("chosen")
    if chosen:
        ax.scatter([chosen["speedup"]], [chosen["drop"] * 100], s=80, marker="*", c="tab:orange", zorder=4)
    if curve.get("budget") is not None:
        ax.axhline(curve["budget"] * 100, ls="--", c="tab:red", lw=0.8)
    for p in pts:
        ax.annotate(f"{p['level']:.0%}", (p["speedup"], p["drop"] * 100), textcoords="offset points", xytext=(4, 3),
                    fontsize=7)
    ax.set_xlabel("int8 speed-up over the unpruned model")
    ax.set_ylabel("accuracy drop (pp)")
    ax.set_title("channel pruning levels (dashed: budget)")
    ax.grid(alpha=0.3)


def plot(report: dict[str, Any], out: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in report["variants"] if r["status"] == "ok" and "latency_ms" in r.get("metrics", {})]
    use_acc = all(r["metrics"].get("accuracy") is not None for r in ok) and ok
    key = "accuracy" if use_acc else "agreement"
    pts = [(r["name"], r["metrics"]["latency_ms"], r["metrics"].get(key) or 0.0) for r in ok]
    front = set(pareto(pts))
    curve = report.get("pruning")
    if curve:
        fig, (ax, bx, px) = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [3, 2, 2]})
    else:
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, lat, q in pts:
        on = name in front
        ax.scatter(lat, q * 100, s=60, c="tab:blue" if on else "tab:gray", zorder=3)
        ax.annotate(name, (lat, q * 100), textcoords="offset points", xytext=(5, 4), fontsize=8)
    fpts = sorted((lat, q) for n, lat, q in pts if n in front)
    if len(fpts) > 1:
        ax.plot([p[0] for p in fpts], [p[1] * 100 for p in fpts], "--", c="tab:blue", lw=1, label="Pareto front")
    default = next((p for p in pts if p[0] == report.get("default")), None)
    if default:
        ax.scatter(default[1], default[2] * 100, s=260, marker="*", c="tab:orange", zorder=4,
                   label=f"default: {default[0]}")
    lats = [p[1] for p in pts]
    if lats and min(lats) > 0 and max(lats) / min(lats) > 8:
        ax.set_xscale("log")
    ax.set_xlabel("p50 latency on the workstation (ms)")
    ax.set_ylabel(f"{key} (%)")
    ax.set_title(f"{report.get('name', 'bundle')}: latency vs {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if curve:
        _pruning_panel(px, curve)
    sized = [r for r in report["variants"] if r.get("bytes")]
    bx.barh([r["name"] for r in sized], [r["bytes"] / 1024 for r in sized], color="tab:green")
    bx.set_xlabel("file size (KiB)")
    bx.invert_yaxis()
    bx.set_title("size")
    fig.tight_layout()
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return Path(out)
