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
    task = next((r["metrics"].get("task_metric") for r in ok if r["metrics"].get("task_metric")), None)
    if task:   # detection / segmentation: the task metric, else its fidelity to Keras
        key = task if all(r["metrics"].get(task) is not None for r in ok) else "task_fidelity"
    pts = [(r["name"], r["metrics"]["latency_ms"], r["metrics"].get(key) or 0.0) for r in ok]
    front = set(pareto(pts))
    steps = [st for st in ((report.get("ptq") or {}).get("steps") or []) if st.get("kl") is not None]
    curve = report.get("pruning")
    from .board import latencies

    on_board = any(r["predicted_ms"] is not None or r["measured_ms"] is not None for r in latencies(report))
    ncols = 2 + bool(steps) + bool(curve) + on_board
    fig, axes = plt.subplots(1, ncols, figsize=(11 + 4 * (ncols - 2), 4.2),
                             gridspec_kw={"width_ratios": [3, 2, 2, 2, 2][:ncols]})
    ax, bx = axes[0], axes[1]
    if curve:
        _pruning_panel(axes[-1 - on_board], curve)
    if on_board:
        from .board import panel

        panel(axes[-1], report)
    if steps:   # what each post-training step bought: KL(Keras‖int8) and agreement, cumulative
        cx = axes[2]
        names = [st["step"] for st in steps]
        cx.barh(names, [max(st["kl"], 1e-9) for st in steps], color="tab:purple")
        cx.set_xscale("log")
        for i, st in enumerate(steps):
            if st.get("agreement") is not None:
                cx.annotate(f"agree {st['agreement'] * 100:.1f}%", (max(st["kl"], 1e-9), i), fontsize=8,
                            xytext=(3, 0), textcoords="offset points", va="center")
        cx.invert_yaxis()
        cx.set_xlabel("KL(Keras ‖ int8), log")
        cx.set_title("int8 steps (cumulative)")
    ci = {r["name"]: r["metrics"].get(f"{key}_ci") for r in ok}
    for name, lat, q in pts:
        on = name in front
        if ci.get(name):   # the 95% interval of the measured fidelity
            lo, hi = ci[name]
            ax.errorbar(lat, q * 100, yerr=[[max(q - lo, 0) * 100], [max(hi - q, 0) * 100]], fmt="none",
                        ecolor="tab:blue" if on else "tab:gray", elinewidth=1, capsize=3, zorder=2)
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
    ax.set_ylabel(f"{key} (%), 95% interval")
    ax.set_title(f"{report.get('name', 'bundle')}: latency vs {key}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    sized = [r for r in report["variants"] if r.get("bytes")]
    bx.barh([r["name"] for r in sized], [r["bytes"] / 1024 for r in sized], color="tab:green")
    bx.set_xlabel("file size (KiB)")
    bx.invert_yaxis()
    bx.set_title("size")
    fig.tight_layout()
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return Path(out)
