"""A profile as people read it: the op table, the check against the whole model, and a bar chart."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..contract.errors import EdgeError
from .core import OpRow, Profile

SHORT = {"float32": "f32", "float16": "f16", "int8": "i8", "uint8": "u8", "int16": "i16", "int32": "i32",
         "int64": "i64", "bool": "bool"}


def tensors(ts) -> str:
    return ", ".join(f"{'x'.join(map(str, t.shape)) or '()'} {SHORT.get(t.dtype, t.dtype)}" for t in ts) or "-"


def xnnpack_cell(r: OpRow) -> str:
    return "yes" if r.op.xnnpack else f"no: {r.op.why_not}"


def table(p: Profile, top: int | None = None) -> list[str]:
    """The op table (model order, or the ``top`` slowest first) and the summary lines under it."""
    rows = p.top(top) if top else list(p.rows)
    head = ("#", "op", "inputs → outputs", "ms", "share", "XNNPACK")
    body = []
    for r in rows:
        flow = f"{tensors(r.op.activations)} → {tensors(r.op.outputs)}"
        ms = "-" if r.ms is None else f"{r.ms:.4f}"
        share = "-" if r.share is None else f"{r.share:.1%}"
        body.append((str(r.op.index), r.op.op, flow, ms, share, xnnpack_cell(r) + (f" ({r.note})" if r.note else "")))
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head) - 1)]
    right = {0, 3, 4}
    fmt = lambda row: "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))) \
        + "  " + row[-1]  # noqa: E731
    what = f"{p.target}" + (f" variant {p.variant}" if p.variant else "") + f" ({p.model})"
    lines = [f"profile of {what}: {p.runtime}, {p.threads} thread(s)"
             + (f", {p.passes} passes" if p.timed else ""), fmt(head), *map(fmt, body)]
    if top and top < len(p.rows):
        lines.append(f"({len(p.rows) - top} {'faster' if p.timed else 'more'} ops not shown; --json has every op)")
    return lines + summary(p)


def summary(p: Profile) -> list[str]:
    out = []
    if p.timed:
        check = (f"; pass by pass the ops plus one invoke's overhead take {p.pass_ratio:.0%} of the whole"
                 + (f" (95% interval {p.pass_ratio_ci[0]:.0%}-{p.pass_ratio_ci[1]:.0%})" if p.pass_ratio_ci else "")
                 if p.pass_ratio else "")
        out.append(f"whole model {p.whole_ms:.4f} ms median (IQR {p.whole_lo_ms:.4f}-{p.whole_hi_ms:.4f}); ops' medians "
                   f"{p.ops_ms:.4f} + overhead {p.overhead_ms:.4f} = {p.sum_ms:.4f} ms{check}")
    reasons: dict[str, Counter] = {}
    for r in p.rows:
        if not r.op.xnnpack:
            reasons.setdefault(r.op.why_not, Counter())[r.op.op] += 1
    share = f" ({p.xnnpack_share:.0%} of the ops' time)" if p.xnnpack_share is not None else ""
    out.append(f"XNNPACK runs {p.xnnpack_ops} of {len(p.rows)} ops{share}" + "".join(
        f"; {sum(c.values())} on builtin kernels: {why} ({', '.join(f'{op} x{n}' for op, n in c.most_common())})"
        for why, c in sorted(reasons.items(), key=lambda kv: -sum(kv[1].values()))))
    out += [f"note: {n}" for n in p.notes]
    return out


def plot(p: Profile, path: str | Path, top: int = 20) -> Path:
    """A horizontal bar chart of the ``top`` slowest ops, coloured by whether XNNPACK runs them (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeError("the plot needs matplotlib, which is not installed here",
                        "pip install matplotlib (the workstation's host extra has it), or leave out --plot") from None
    if not p.timed:
        raise EdgeError("this profile has no per-op times to plot", "profile with times (leave out --no-times)")
    rows = [r for r in p.top(top) if r.ms is not None][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.6))
    colours = ["#2a9d8f" if r.op.xnnpack else "#e76f51" for r in rows]
    ax.barh(range(len(rows)), [r.ms for r in rows], color=colours,
            xerr=[[r.ms - (r.lo_ms or r.ms) for r in rows], [max(0.0, (r.hi_ms or r.ms) - r.ms) for r in rows]],
            error_kw={"elinewidth": 0.8, "alpha": 0.6})
    ax.set_yticks(range(len(rows)), [f"#{r.op.index} {r.op.op} {tensors(r.op.outputs)}" for r in rows], fontsize=8)
    for i, r in enumerate(rows):
        ax.text(r.ms, i, f" {r.share:.1%}", va="center", fontsize=7)
    ax.set_xlabel("ms per inference (bars: median over passes; whiskers: interquartile range)")
    ax.set_title(f"{p.model}: slowest {len(rows)} of {len(p.rows)} ops, {p.threads} thread(s); "
                 f"whole model {p.whole_ms:.3f} ms", fontsize=9)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#2a9d8f", label="XNNPACK"), Patch(color="#e76f51", label="builtin kernels")],
              loc="lower right", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out
