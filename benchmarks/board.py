"""The board family: per-op profiles checked against the whole model, board predictions against published
figures, and the default chosen for a Pi 4.

    python -m benchmarks.board --out benchmarks/results/board.json [--seconds 10]

1. ``keras-edge profile`` on MobileNetV2 and EfficientNetB0 (224, ``weights=None``: they serve speed only, their
   outputs mean nothing), the demo's digits CNN, the shapes detector of ``tests/synthetic.py`` (fp32 and int8
   each) and the detector as int16x8 (every op outside XNNPACK): the ops' times against the whole model measured
   in the same passes (pass by pass, with the bootstrap 95% interval), at every core and at one thread.
2. The board cost tables against the published figures they were not fitted on (``board_fit.py``), and the
   derivation method (another suite's cross-board ratio) against a board that has figures.
3. MobileNetV2 224 converted with ``--board pi4``: the default the Pi 4 prediction picks, next to what the
   workstation's own timing would have picked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks.common import WORK, environment, to_jsonable, write_json  # noqa: E402

CHECK = 0.15   # the ops' sum must come within this of the whole model


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def profiled(target: Path, variant: str | None, threads: int | None, seconds: float) -> dict[str, Any]:
    from keras_edge.device.profile import ProfileConfig, profile

    p = profile(ProfileConfig(target=str(target), variant=variant, threads=threads, passes=30, min_seconds=seconds))
    lo, hi = p.pass_ratio_ci
    import os

    return {"variant": variant or target.stem, "load_average": [round(x, 2) for x in os.getloadavg()], "threads": p.threads, "ops": len(p.rows), "xnnpack_ops": p.xnnpack_ops,
            "passes": p.passes, "whole_ms": round(p.whole_ms, 4), "whole_iqr_ms": [round(p.whole_lo_ms, 4), round(p.whole_hi_ms, 4)],
            "ops_ms": round(p.ops_ms, 4), "overhead_ms": round(p.overhead_ms, 4),
            "pass_ratio": round(p.pass_ratio, 3), "pass_ratio_ci": [round(lo, 3), round(hi, 3)],
            "sum_of_medians_ratio": round(p.sum_ratio, 3), "within": abs(p.pass_ratio - 1) <= CHECK,
            "top": [{"index": r.op.index, "op": r.op.op, "ms": round(r.ms, 4), "share": round(r.share, 3),
                     "xnnpack": r.op.xnnpack, "why_not": r.op.why_not} for r in p.top(3)]}


def profiles(models: dict[str, tuple[Path, list[str | None]]], seconds: float, log, repeats: int = 2) -> list[dict[str, Any]]:
    """Every model's profile at every core and at one thread, the whole list ``repeats`` times (minutes apart: a
    shared machine's load comes and goes, and the repeat shows how much of a result is the machine's)."""
    from keras_edge.device.engine.runtime import default_threads

    out = []
    for rep in range(1, repeats + 1):
        for name, (target, variants) in models.items():
            for variant in variants:
                for threads in sorted({default_threads(), 1}, reverse=True):
                    log(f"profile ({rep}/{repeats}): {name} {variant or ''} at {threads} thread(s)")
                    r = {"model": name, "repeat": rep, **profiled(target, variant, threads, seconds)}
                    log(f"  whole {r['whole_ms']:.3f} ms, ops + overhead {r['pass_ratio']:.0%} of it pass by pass "
                        f"({r['pass_ratio_ci'][0]:.0%}-{r['pass_ratio_ci'][1]:.0%}), {r['xnnpack_ops']}/{r['ops']} on XNNPACK")
                    out.append(r)
    return out


def pi4_default(mobilenet, reconvert: bool, log) -> dict[str, Any]:
    """MobileNetV2 224 converted for the Pi 4: the default, its basis, and what the workstation alone would choose."""
    from benchmarks.models import convert_bundle
    from keras_edge.device.contract import bundle as B
    from keras_edge.host.convert.choose import choose

    out = WORK / "bundles" / "mobilenetv2-pi4"
    convert_bundle(mobilenet.keras_path, out, mobilenet.calib, mobilenet.preset, reconvert=reconvert, budget=False,
                   board="pi4", log=log)
    m = B.read_manifest(out)
    here = choose(m.variants, None, 0.999)
    rows = {v.name: {"workstation_ms": v.metrics.get("latency_ms"), "predicted_pi4_ms": v.metrics["board"]["ms"],
                     "band": [v.metrics["board"]["low_ms"], v.metrics["board"]["high_ms"]]}
            for v in m.variants if v.status is B.VariantStatus.OK}
    return {"default": m.default, "basis": m.default_basis, "reason": m.default_reason,
            "workstation_would_choose": here.name, "variants": rows, "int8": m.default == "int8"}


def run(seconds: float, reconvert: bool, log=log) -> dict[str, Any]:
    from benchmarks import board_fit
    from benchmarks.models import digits_model, imagenet_model

    t0 = time.perf_counter()
    mobilenet = imagenet_model("mobilenetv2", reconvert, log)
    effnet = imagenet_model("efficientnetb0", reconvert, log)
    digits = digits_model(reconvert, log)
    det = board_fit.detector_files(log)
    fit = board_fit.run(write=False, log=log)
    models = {"mobilenetv2": (mobilenet.bundle, ["fp32", "int8"]), "efficientnetb0": (effnet.bundle, ["fp32", "int8"]),
              "digits": (digits.bundle, ["fp32", "int8"]), "detector": (det["fp32"], [None]),
              "detector-int8": (det["int8"], [None]), "detector-int16x8": (det["int16x8"], [None])}
    prof = profiles(models, seconds, log)
    default = pi4_default(mobilenet, reconvert, log)
    log(f"MobileNetV2 --board pi4: default {default['default']} ({default['basis']}); the workstation alone would "
        f"choose {default['workstation_would_choose']}")
    held = [e for e in fit["figures"] if e["held_out"]]
    return {"environment": environment(), "seconds_per_profile": seconds, "check": CHECK, "profiles": prof,
            "predictions": {"held_out": held, "fitted": [e for e in fit["figures"] if not e["held_out"]],
                            "held_out_median_abs_error": fit["held_out_median_abs_error"],
                            "held_out_max_abs_error": fit["held_out_max_abs_error"],
                            "derivation_check": fit["derivation_check"], "shape": fit["shape"],
                            "family_factors": fit["family_factors"]["factor"]},
            "pi4_default": default, "wall_s": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "board.json")
    ap.add_argument("--seconds", type=float, default=8.0, help="timing per profile (passes repeat at least this long)")
    ap.add_argument("--reconvert", action="store_true")
    args = ap.parse_args(argv)
    write_json(args.out, to_jsonable(run(args.seconds, args.reconvert)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
