"""Fitting the board cost tables (``device/profile/boards.json``) on published board figures.

    python -m benchmarks.board_fit [--write]

1. The reference models of the published figures are built here: MobileNet v1, v2, v3 Large and v3 Small at
   224x224 (``keras.applications``, ``weights=None``: their speed does not depend on the weights), converted
   with keras-edge's own fp32 and int8 recipes (int8 calibrated on seeded noise: speed only). Their per-op
   workload per kernel family is read from the converted files by the board-side code (``features``).
2. The published figures (``boards.json`` → ``published``, each with its source) are split: per board,
   MobileNet v3 Large fp32 and MobileNet v1 int8 are held out; the rest fit the shared coefficients and
   every board's two unit costs (:mod:`keras_edge.device.profile.fit`).
3. Boards with no published TFLite figure are derived from a fitted board through cross-board ratios of
   one benchmark suite that measured both (ncnn's benchncnn, ``derived`` → ``ratio``); the same method,
   predicting the Pi 3 from the Pi 4, is checked against XNNPACK's published Pi 3 figures.
4. Kernel families other than XNNPACK f32/qs8 (builtin kernels, int16 activations, dynamic range) get a
   slowdown factor measured on this workstation, side by side (:func:`family_factors`); they are assumed to
   carry over to the boards and say so in the table.

``--write`` stores the fit in ``device/profile/boards.json``; without it the fit is only reported.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import WORK

BOARDS_JSON = Path(__file__).resolve().parent.parent / "device" / "profile" / "boards.json"
REF_DIR = WORK / "board" / "reference"
REFERENCE = {
    "mobilenet_v1": lambda k: k.applications.MobileNet(input_shape=(224, 224, 3), weights=None),
    "mobilenet_v2": lambda k: k.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None),
    "mobilenet_v3_large": lambda k: k.applications.MobileNetV3Large(input_shape=(224, 224, 3), weights=None,
                                                                    include_preprocessing=False),
    "mobilenet_v3_small": lambda k: k.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=None,
                                                                    include_preprocessing=False),
}
HELD_OUT = ("mobilenet_v3_large/fp32", "mobilenet_v1/int8")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def reference_files(log: Callable[[str], None] = log) -> dict[str, Path]:
    """``<model>/<variant>`` → the converted .tflite (built once, kept under build/bench/board)."""
    files = {f"{m}/{v}": REF_DIR / f"{m}_{v}.tflite" for m in REFERENCE for v in ("fp32", "int8")}
    if all(p.is_file() for p in files.values()):
        return files
    import keras

    from keras_edge.host.tflite.variants import ConvertInputs, IoType, convert

    REF_DIR.mkdir(parents=True, exist_ok=True)
    calib = np.random.default_rng(0).uniform(-1, 1, (16, 224, 224, 3)).astype(np.float32)
    for name, build in REFERENCE.items():
        if all(files[f"{name}/{v}"].is_file() for v in ("fp32", "int8")):
            continue
        log(f"reference model {name}: building and converting (fp32, int8)")
        keras.utils.set_random_seed(0)
        model = build(keras)
        for v in ("fp32", "int8"):
            data, _ = convert(model, v, ConvertInputs(calib=[calib], io=IoType.UINT8))
            tmp = files[f"{name}/{v}"].with_suffix(".partial")
            tmp.write_bytes(data)
            tmp.replace(files[f"{name}/{v}"])
    return files


def model_ops(path: Path, threads: int = 1):
    from keras_edge.device.profile.core import model_ops as read

    return read(path, threads)


def reference_workloads(log: Callable[[str], None] = log) -> dict[str, dict[str, dict[str, float]]]:
    from keras_edge.device.profile.fit import features

    return {key: features(model_ops(path)) for key, path in reference_files(log).items()}


def family_factors(files: dict[str, Path], rounds: int = 15, log: Callable[[str], None] = log) -> dict[str, Any]:
    """Slowdown of the other kernel families against XNNPACK f32/qs8, measured here side by side.

    On MobileNet v2: builtin-f32 is fp32 without XNNPACK / fp32 with it; builtin-int8 int8 without / with;
    xnnpack-qd8 (or builtin-hybrid, whichever runs it) the dynamic-range conversion / int8. builtin-int16 on
    the shapes detector (trained: a random-weight MobileNet v2 overflows int16x8's accumulators): int16x8 / int8.
    """
    from benchmarks.common import side_by_side

    from keras_edge.device.engine.runtime import select_runtime
    from keras_edge.device.engine.core import EngineOptions
    from keras_edge.device.profile.core import build, _inputs, model_ops as read

    extra = _extra_variants(log)
    det = detector_files(log)
    rt = select_runtime()
    one = EngineOptions(threads=1)
    runs = {"fp32-xnnpack": (files["mobilenet_v2/fp32"], True), "fp32-builtin": (files["mobilenet_v2/fp32"], False),
            "int8-xnnpack": (files["mobilenet_v2/int8"], True), "int8-builtin": (files["mobilenet_v2/int8"], False),
            "dynamic": (extra["dynamic"], True), "detector-int8": (det["int8"], True),
            "detector-int16x8": (det["int16x8"], True)}
    calls = {}
    for key, (path, xnn) in runs.items():
        it = build(rt, one, path=path, xnnpack=xnn)
        for d, x in zip(it.get_input_details(), _inputs(it)):
            it.set_tensor(d["index"], x)
        calls[key] = it.invoke
    med = {k: v.median_ms for k, v in side_by_side(calls, rounds, per_round=2).items()}
    dyn_ops = read(extra["dynamic"], 1)
    dyn_family = max({str(o.family) for o in dyn_ops if o.macs}, key=lambda f: sum(o.macs for o in dyn_ops if str(o.family) == f))
    factors = {"builtin-f32": med["fp32-builtin"] / med["fp32-xnnpack"],
               "builtin-int8": med["int8-builtin"] / med["int8-xnnpack"],
               "builtin-int16": med["detector-int16x8"] / med["detector-int8"],
               dyn_family: med["dynamic"] / med["int8-xnnpack"]}
    if dyn_family != "builtin-hybrid":
        factors["builtin-hybrid"] = factors["builtin-int8"] * factors[dyn_family]
    if dyn_family != "xnnpack-qd8":
        factors["xnnpack-qd8"] = factors[dyn_family]
    log("family factors (MobileNet v2, 1 thread, medians of interleaved rounds): "
        + ", ".join(f"{k} {v:.2f}" for k, v in factors.items()))
    return {"factor": {k: round(v, 3) for k, v in factors.items()}, "medians_ms": {k: round(v, 3) for k, v in med.items()},
            "dynamic_runs_on": dyn_family}


def _extra_variants(log) -> dict[str, Path]:
    """MobileNet v2 with dynamic-range quantization, for the family factors."""
    out = {"dynamic": REF_DIR / "mobilenet_v2_dynamic.tflite"}
    if all(p.is_file() for p in out.values()):
        return out
    import keras

    from keras_edge.host.tflite.variants import ConvertInputs, convert

    keras.utils.set_random_seed(0)
    model = REFERENCE["mobilenet_v2"](keras)
    log("reference model mobilenet_v2: converting dynamic")
    data, _ = convert(model, "dynamic", ConvertInputs(calib=[np.zeros((1, 224, 224, 3), np.float32)]))
    out["dynamic"].write_bytes(data)
    return out


def detector_files(log: Callable[[str], None] = log) -> dict[str, Path]:
    """The shapes detector of tests/synthetic.py, trained here briefly (speed only), as fp32, int8 and int16x8."""
    out = {v: WORK / "board" / f"detector_{v}.tflite" for v in ("fp32", "int8", "int16x8")}
    if all(p.is_file() for p in out.values()):
        return out
    import tempfile

    from keras_edge.host.tflite.variants import ConvertInputs, IoType, convert
    from tests import synthetic as S

    with tempfile.TemporaryDirectory(prefix="ke-board-") as tmp:
        train = S.write_set(Path(tmp) / "train", 96, seed=1)
        log("detector: training on synthetic shapes (3 epochs, speed only)")
        model = S.decoded(S.train_detector(train, epochs=3), "normalized")
        calib = S.inputs_of(train, S.input_spec())[:32]
        for v, path in out.items():
            data, _ = convert(model, v, ConvertInputs(calib=[calib], io=IoType.UINT8))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return out


def derive(fit_ns: dict[str, dict[str, float]], derivations: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Unit costs of boards with no TFLite figure: a fitted board's, scaled by the ratio of another suite's times."""
    out = {}
    for kind, d in derivations.items():
        src = fit_ns[d["from"]]
        out[kind] = {b: src[b] * float(d["ratio"][b]) for b in ("f32", "qs8")}
    return out


def run(write: bool = False, log: Callable[[str], None] = log) -> dict[str, Any]:
    from keras_edge.device.profile.fit import Figure, errors, features, fit

    table = json.loads(BOARDS_JSON.read_text())
    files = reference_files(log)
    workloads = {key: features(model_ops(p)) for key, p in files.items()}
    factors = family_factors(files, log=log)
    figures = [Figure.from_dict({**f, "held_out": f["model"] in HELD_OUT}) for f in table["published"]]
    fitted_boards = sorted({f.board for f in figures})
    result = fit(figures, workloads, factors["factor"], table["shape"].get("parallel_fraction", 0.8))
    errs = errors(result, figures, workloads)
    ns = {**result.ns_per_mac, **derive(result.ns_per_mac, table["derived"])}
    check = _check_derivation(result, figures, workloads, table)
    held = [e for e in errs if e["held_out"]]
    summary = {
        "shape": {"depthwise_mac": result.shape.depthwise_mac, "byte": result.shape.byte, "op_macs": result.shape.op_macs},
        "rms_log_error_fitted": round(result.rms_log_fitted, 4),
        "held_out_max_abs_error": round(max(abs(e["error"]) for e in held), 4),
        "held_out_median_abs_error": round(float(np.median([abs(e["error"]) for e in held])), 4),
        "figures": errs, "derivation_check": check, "family_factors": factors, "workloads": workloads,
        "ns_per_mac": ns}
    for e in errs:
        log(f"  {e['board']:10s} {e['model']:26s} published {e['published_ms']:7.1f} ms  predicted "
            f"{e['predicted_ms']:7.1f} ms  {e['error']:+.0%}{'  (held out)' if e['held_out'] else ''}")
    log(f"held-out error: median {summary['held_out_median_abs_error']:.0%}, max {summary['held_out_max_abs_error']:.0%}")
    if write:
        _write(table, result, ns, errs, factors, workloads, fitted_boards, check)
    return summary


def _check_derivation(result, figures, workloads, table) -> list[dict[str, Any]]:
    """The derivation method on a board that has figures: Pi 3 (armv7) from Pi 4 (armv7) x ncnn's Pi 3+/Pi 4 ratio."""
    chk = table.get("derivation_check")
    if not chk:
        return []
    derived = derive(result.ns_per_mac, {chk["board"]: chk})[chk["board"]]
    out = []
    for f in figures:
        if f.board != chk["board"]:
            continue
        from keras_edge.device.profile.fit import work

        w = work(workloads[f.model], result.shape.depthwise_mac, result.shape.byte, result.shape.op_macs,
                 result.shape.factor)
        pred = sum(w[b] * derived[b] for b in w) / 1e6
        out.append({"board": f.board, "model": f.model, "published_ms": f.ms, "derived_ms": round(pred, 2),
                    "error": round(pred / f.ms - 1, 4)})
    return out


def _write(table, result, ns, errs, factors, workloads, fitted_boards, check) -> None:
    held = [abs(e["error"]) for e in errs if e["held_out"]]
    worst = max(held)
    table["shape"].update({"depthwise_mac": result.shape.depthwise_mac, "byte": result.shape.byte,
                           "op_macs": result.shape.op_macs, "factor": factors["factor"]})
    derive_err = max((abs(c["error"]) for c in check), default=0.5)
    for kind, board in table["boards"].items():
        board["ns_per_mac"] = {k: round(v, 6) for k, v in ns[kind].items()}
        own = [abs(e["error"]) for e in errs if e["held_out"] and e["board"] == kind]
        if kind in fitted_boards:
            board["basis"] = "fit"
            board["band"] = round(max(own + [float(np.median(held))]), 2)
        else:
            board["basis"] = "derived"
            board["band"] = round(max(0.5, worst + derive_err), 2)
    table["fit"] = {"held_out": list(HELD_OUT), "rms_log_error_fitted": round(result.rms_log_fitted, 4),
                    "held_out_errors": [e for e in errs if e["held_out"]],
                    "fitted_errors": [e for e in errs if not e["held_out"]],
                    "derivation_check": check, "family_factors": factors,
                    "how": "python -m benchmarks.board_fit --write"}
    table["reference_workloads"] = {k: {f: {kk: round(vv) for kk, vv in v.items()} for f, v in fam.items()}
                                    for k, fam in workloads.items()}
    tmp = BOARDS_JSON.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(table, indent=1) + "\n")
    tmp.replace(BOARDS_JSON)
    log(f"wrote {BOARDS_JSON}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="store the fit in device/profile/boards.json")
    args = ap.parse_args(argv)
    run(args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
