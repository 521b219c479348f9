"""Cold start to first result and peak RSS: ``keras-edge run`` against loading the Keras model and predicting once.

Each measurement is a fresh Python process started through :mod:`benchmarks.child` (argument lists,
no shell): wall time from process start to its first result line on stdout, and the child's peak
RSS. The runner is the device CLI (``python -m keras_edge.cli run BUNDLE IMAGE --json``), for
the manifest's default variant and for int8; the Keras side is :mod:`benchmarks.keras_once`.
Repeats are interleaved so that machine load falls on both alike.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .common import ROOT, WORK, Environment, environment, ratio
from .models import BenchModel


@dataclass(frozen=True)
class ColdRow:
    contender: str
    first_result_s: list[float]
    peak_rss_mb: list[float]
    median_first_result_s: float
    median_peak_rss_mb: float
    first_line: str


@dataclass(frozen=True)
class ModelCold:
    model: str
    image: str
    rows: list[ColdRow]
    runner_faster: float     # Keras median first result / default runner median first result
    runner_smaller: float    # Keras median peak RSS / default runner median peak RSS


@dataclass(frozen=True)
class ColdStartResult:
    environment: Environment
    repeats: int
    models: list[ModelCold]
    notes: list[str] = field(default_factory=list)


def commands(model: BenchModel, image: Path) -> dict[str, list[str]]:
    """The argument lists to compare: the Keras script, the runner on the default variant and on int8."""
    from keras_edge.device.contract.bundle import read_manifest

    default = read_manifest(model.bundle).default
    run = [sys.executable, "-m", "keras_edge.cli", "run", str(model.bundle), str(image), "--json", "--top-k", "1"]
    cmds = {"keras load + predict": [sys.executable, str(ROOT / "keras_once.py"), str(model.keras_path), str(image),
                                     model.preset or "raw"],
            f"keras-edge run ({default}, default)": run}
    if default != "int8":
        cmds["keras-edge run (int8)"] = run + ["--variant", "int8"]
    return cmds


def launch(argv: list[str]) -> dict:
    """Run ``argv`` under the small launcher and return what it measured."""
    out = subprocess.run([sys.executable, str(ROOT / "child.py"), "--", *argv], capture_output=True, text=True,
                         check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"launcher failed: {out.stderr.strip()[-400:]}")
    res = json.loads(out.stdout)
    if res["returncode"] != 0 or not res["first_line"]:
        raise RuntimeError(f"{' '.join(argv[:4])} … failed: {res.get('stderr_tail')}")
    return res


def sample_image(model: BenchModel) -> Path:
    """A real image file for the model: the astronaut JPEG, or an eval digit PNG."""
    import cv2
    from skimage import data

    if model.input_shape[-1] == 1:
        return sorted((model.calib.parent / "eval").rglob("*.png"))[0]
    path = WORK / "astronaut.jpg"
    if not path.is_file():
        cv2.imwrite(str(path), data.astronaut()[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return path


def measure_model(model: BenchModel, repeats: int, log=print) -> ModelCold:
    image = sample_image(model)
    cmds = commands(model, image)
    runs: dict[str, list[dict]] = {name: [] for name in cmds}
    for r in range(repeats):
        for name, argv in cmds.items():
            runs[name].append(launch(argv))
        log(f"  {model.name} repeat {r + 1}/{repeats}: " +
            ", ".join(f"{n} {v[-1]['first_result_s']:.2f}s" for n, v in runs.items()))
    rows = [ColdRow(name, [x["first_result_s"] for x in v], [x["peak_rss_mb"] for x in v],
                    statistics.median(x["first_result_s"] for x in v), statistics.median(x["peak_rss_mb"] for x in v),
                    v[0]["first_line"][:300]) for name, v in runs.items()]
    keras, default = rows[0], rows[1]
    return ModelCold(model.name, image.name, rows, ratio(keras.median_first_result_s, default.median_first_result_s),
                     ratio(keras.median_peak_rss_mb, default.median_peak_rss_mb))


def run(models: list[BenchModel], repeats: int = 3, log=print) -> ColdStartResult:
    """Cold start of every model, each contender a fresh process."""
    out = []
    for m in models:
        log(f"cold start: {m.name}")
        out.append(measure_model(m, repeats, log))
    notes = ["first result = the child's first line on stdout (the runner's JSON result, the Keras script's print)",
             "peak RSS = ru_maxrss of the child (RUSAGE_CHILDREN of a small launcher; includes its ~10 MB floor)",
             "files were just written, so they are in the page cache for both sides: a warm-disk cold start"]
    return ColdStartResult(environment(), repeats, out, notes)
