"""Detection: mAP of Keras, fp32, int8 (and int8-ptq / int8-selective when made) and the chosen default, with
the boxes in normalised units and in input pixels; per-image latency of inference and of postprocessing.

    python -m benchmarks.detection --out benchmarks/results/detection.json

The detector is the small YOLO-style model of ``tests/synthetic.py``, trained here (a minute) on *synthetic
shapes* (circles, squares, triangles pasted on scikit-image textures and photos; nothing downloaded), and
converted by the real ``keras_edge.host.convert`` with ``--task detection --head yolo --objectness``: once with
its boxes as fractions of the input (``normalized``) and once as input pixels (``pixels``, the way Ultralytics
exports boxes next to [0, 1] scores in one tensor). Variants are scored on 60 held-out annotated images
(mAP@0.5 and mAP@0.5:0.95 through the board's own postprocessing, boxes mapped back to each original image).

Latency per evaluation image, median over the images, one LiteRT interpreter per variant: ``invoke`` alone
(inputs already set), and the postprocessing (decode, NMS, mapping back to the image) of its outputs.
An annotated image from ``keras-edge run --draw`` is saved as ``results/detection_draw.jpg``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks.common import environment, to_jsonable  # noqa: E402

BUDGET = 0.02   # mAP@0.5:0.95 points the default may lose


def per_image_latency(bundle: Path, variant: str, images: list[Path]) -> dict[str, float]:
    """Median ms per image of invoke and of postprocessing, through the bundle's own engine and Postprocessor."""
    from keras_edge.device.contract import bundle as B
    from keras_edge.device.inputs import images as I
    from keras_edge.device.engine.core import EngineOptions, load
    from keras_edge.device.outputs.postprocess import Postprocessor
    from keras_edge.device.inputs.preprocess import preprocess, quantize

    m = B.read_manifest(bundle)
    v = next(x for x in m.variants if x.name == variant)
    eng = load(bundle / v.file, EngineOptions(threads=1))
    post = Postprocessor(m.postprocessing, eng.outputs, m.preprocess, bundle)
    spec = eng.inputs[0]
    inv, pp = [], []
    for path in images:
        img = I.load(path)
        eng.set_input(0, quantize(preprocess(img, m.preprocess)[None], spec.dtype, spec.scale, spec.zero_point))
        eng.invoke()                                   # warm: the first call per shape allocates
        t0 = time.perf_counter_ns()
        eng.invoke()
        inv.append(time.perf_counter_ns() - t0)
        raw = [eng.output(i) for i in range(len(eng.outputs))]
        t0 = time.perf_counter_ns()
        post(raw, img.shape[:2])
        pp.append(time.perf_counter_ns() - t0)
    return {"inference_ms": round(float(np.median(inv)) / 1e6, 4), "postprocess_ms": round(float(np.median(pp)) / 1e6, 4),
            "threads": 1, "images": len(images)}


def draw_one(bundle: Path, ev, draw: Path, variant: str, log) -> dict | None:
    """``keras-edge run --draw`` over the first evaluation images; the one with the most confident detections
    (sum of scores of 0.5 and above) is kept."""
    import cv2

    folder = draw.parent / "draw-inputs"
    folder.mkdir()
    for p in ev.paths[:12]:
        shutil.copy(p, folder / p.name)
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "run", str(bundle), str(folder), "--json", "--draw", str(draw)],
                          capture_output=True, text=True, cwd=ROOT.parent, timeout=300)
    if proc.returncode != 0:
        log(f"detection: run --draw failed: {proc.stderr.strip()[-300:]}")
        return None
    results = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    results = [r for r in results if r.get("task", {}).get("detections") is not None]
    best = max(results, key=lambda r: sum(d["score"] for d in r["task"]["detections"] if d["score"] >= 0.5))
    stem = Path(best["source"]).stem
    drawn = next(p for p in draw.iterdir() if p.stem.startswith(stem))
    img = cv2.imread(str(drawn))
    img = cv2.resize(img, (img.shape[1] * 2, img.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(ROOT / "results" / "detection_draw.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return {"file": "results/detection_draw.jpg", "variant": variant, "source": Path(best["source"]).name,
            "detections": best["task"]["detections"]}


def run(log=lambda s: print(s, file=sys.stderr, flush=True)) -> dict:
    from keras_edge.device.outputs.task_options import TaskOptions
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions
    from tests import synthetic as S

    work = Path(tempfile.mkdtemp(prefix="ke-detection-"))
    try:
        train = S.write_set(work / "train", 480, seed=1)
        ev = S.write_set(work / "eval", 60, seed=2)
        t0 = time.perf_counter()
        raw = S.train_detector(train)
        train_s = time.perf_counter() - t0
        log(f"detection: detector trained in {train_s:.0f}s")
        out: dict = {"environment": environment(), "data": {
            "what": "circles, squares and triangles on scikit-image textures and photos, random sizes, "
                    "colours and occlusions; originals 120-200 px, not square (letterboxed to 64x64)",
            "train_images": len(train.samples), "eval_images": len(ev.samples),
            "eval_objects": int(sum(len(s.boxes) for s in ev.samples))},
            "model": {"kind": "YOLO-style dense head, 8x8 grid, (1, 64, 8): cx, cy, w, h, objectness, 3 class scores",
                      "train_s": round(train_s, 1), "epochs": 15, "augmentation": "left-right mirror"}, "budget": BUDGET, "units": {}}
        for units in ("normalized", "pixels"):
            path = work / f"shapes_{units}.keras"
            S.decoded(raw, units).save(path)
            bundle = work / f"det_{units}"
            t1 = time.perf_counter()
            res = convert(ConvertConfig(model=path, out=bundle, calib=train.images, eval=ev.images,
                                        variants=("fp32", "int8"), preprocess=PreprocessOptions(resize="letterbox"),
                                        task_options=TaskOptions(task="detection", head="yolo", objectness=True,
                                                                 box_units=units),
                                        annotations=ev.labels, labels=train.names, max_accuracy_drop=BUDGET,
                                        calib_samples=200, search_time=90), log=lambda s: log(f"  {units}: {s}"))
            k = res.report.keras
            entry = {"convert_s": round(time.perf_counter() - t1, 1), "default": res.manifest.default,
                     "default_reason": res.manifest.default_reason,
                     "keras": {"map50": k["map50"], "map50_95": k["map50_95"]}, "variants": {}}
            for v in res.variants:
                if v.status.value != "ok":
                    entry["variants"][v.name] = {"status": str(v.status), "reason": v.reason}
                    continue
                mt = v.metrics
                entry["variants"][v.name] = {
                    "map50": mt["map50"], "map50_95": mt["map50_95"], "fidelity_to_keras": mt["task_fidelity"],
                    "drop": mt["metric_drop"], "bytes": v.bytes,
                    **per_image_latency(bundle, v.name, list(ev.paths))}
            d = entry["variants"][res.manifest.default]
            entry["chosen"] = {"name": res.manifest.default, "map50": d["map50"], "map50_95": d["map50_95"]}
            out["units"][units] = entry
            log(f"detection ({units}): keras mAP@0.5 {k['map50']:.3f}, "
                + ", ".join(f"{n} {e.get('map50', 0):.3f}" for n, e in entry["variants"].items())
                + f"; default {res.manifest.default}")
            if units == "normalized":
                out["draw"] = draw_one(bundle, ev, work / "drawn", res.manifest.default, log)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "detection.json")
    args = ap.parse_args(argv)
    result = run()
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
