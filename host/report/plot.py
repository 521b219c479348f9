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


# label offsets tried around a point, in points: near first, then further out (with a leader line)
_RINGS = (8, 16, 26, 38, 52, 68)
_DIRECTIONS = ((1, 0.6), (1, -0.6), (-1, 0.6), (-1, -0.6), (0, 1), (0, -1), (1, 0), (-1, 0), (1, 1.6), (-1, 1.6),
               (1, -1.6), (-1, -1.6))


def _overlaps(a: Any, b: Any, pad: float = 1.0) -> bool:
    return not (a.x1 + pad <= b.x0 or b.x1 + pad <= a.x0 or a.y1 + pad <= b.y0 or b.y1 + pad <= a.y0)


def place_labels(ax: Any, points: list[tuple[str, float, float]], obstacles: list[Any]) -> list[Any]:
    """Name each point with a label that overlaps no other label, marker or ``obstacles`` (display boxes, e.g.
    the legend) and stays inside the axes: offsets are tried near first, then further out with a leader line.
    Points at the same place share one label. Returns the label artists."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    groups: dict[tuple[float, float], list[str]] = {}
    for name, x, y in points:
        groups.setdefault((round(x, 12), round(y, 12)), []).append(name)
    frame = ax.get_window_extent(renderer)
    placed: list[Any] = list(obstacles)
    markers = []
    for (x, y) in groups:   # each marker's own box (a 60-point² scatter is about 8x8 points)
        px, py = ax.transData.transform((x, y))
        r = 5 * fig.dpi / 72
        from matplotlib.transforms import Bbox

        markers.append(Bbox([[px - r, py - r], [px + r, py + r]]))
    placed += markers
    labels = []
    for (x, y), names in sorted(groups.items(), key=lambda kv: kv[0]):
        text = ", ".join(names)
        best = None
        for ring in _RINGS:
            for dx, dy in _DIRECTIONS:
                off = (dx * ring, dy * ring * 0.7)
                ha = "left" if dx > 0 else "right" if dx < 0 else "center"
                va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
                t = ax.annotate(text, (x, y), textcoords="offset points", xytext=off, fontsize=8, ha=ha, va=va,
                                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6} if ring > _RINGS[1] else None,
                                zorder=5)
                box = t.get_window_extent(renderer)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                if inside and not any(_overlaps(box, p) for p in placed):
                    best = (t, box)
                    break
                t.remove()
            if best:
                break
        if best is None:   # nowhere free: the nearest spot, still inside the axes
            t = ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, 5), fontsize=8, zorder=5)
            best = (t, t.get_window_extent(renderer))
        placed.append(best[1])
        labels.append(best[0])
    return labels


def _log_ticks(axis: Any) -> None:
    """A log axis labelled at 1, 2 and 5 per decade in plain numbers, minor ticks unlabelled (they overlapped)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def figure(report: dict[str, Any]) -> tuple[Any, list[Any]]:
    """report.png's figure and its variant labels (placed so that no two overlap)."""
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
        _log_ticks(cx.xaxis)
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
        _log_ticks(ax.xaxis)
    if lats:   # room around the points for their labels
        ax.margins(x=0.25, y=0.2)
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
    fig.set_dpi(DPI)
    fig.tight_layout()
    fig.canvas.draw()
    legend = ax.get_legend()
    obstacles = [legend.get_window_extent(fig.canvas.get_renderer())] if legend else []
    labels = place_labels(ax, [(n, lat, q * 100) for n, lat, q in pts], obstacles)
    return fig, labels


DPI = 110


def plot(report: dict[str, Any], out: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig, _ = figure(report)
    fig.savefig(out, dpi=DPI, format="png")
    plt.close(fig)
    return Path(out)
