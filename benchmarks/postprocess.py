"""Task postprocessing cost (device/postprocess.py), apart from inference, on output shapes of common models.

    python -m benchmarks.postprocess        # prints, and writes benchmarks/results/postprocess.json

- YOLOv8-style dense head (1, 84, 8400) transposed, normalised boxes, 80 classes, ~200 candidates above the
  threshold, letterboxed 640x640 input mapped back to a 1280x720 frame: float32 and int8 outputs.
- TFLite_Detection_PostProcess outputs (1, 100, 4) etc.: only thresholding and mapping (NMS ran in the model).
- Segmentation (1, 256, 256, 21) scores → argmax → 1280x720 class map, class areas.

Not part of ``make bench`` (standalone; no TensorFlow needed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_edge.device.contract.bundle import TensorSpec
from keras_edge.device.outputs.postprocess import Postprocessor
from keras_edge.device.inputs.preprocess import PreprocessSpec
from keras_edge.device.contract.tasks import PostprocessSpec, Task

from .common import RESULTS, Environment, Stats, environment, side_by_side, write_json

FRAME_HW = (720, 1280)


@dataclass(frozen=True)
class PostprocessResult:
    environment: Environment
    cases: dict[str, Stats]
    detections: dict[str, int]


def cases() -> tuple[dict[str, tuple[Postprocessor, list[np.ndarray]]], dict[str, int]]:
    rng = np.random.default_rng(0)
    out: dict[str, tuple[Postprocessor, list[np.ndarray]]] = {}
    letterbox = PreprocessSpec(height=640, width=640, resize="letterbox")
    p = rng.uniform(0, 0.05, (1, 84, 8400)).astype(np.float32)
    p[0, :2] = rng.uniform(0, 1, (2, 8400))
    p[0, 2:4] = rng.uniform(0.02, 0.15, (2, 8400))
    hot = rng.choice(8400, 200, replace=False)
    p[0, 4 + rng.integers(0, 80, 200), hot] = rng.uniform(0.3, 0.95, 200)
    yolo = PostprocessSpec(Task.DETECTION, {"predictions": 0}, head="yolo", num_classes=80)
    out["yolo_84x8400_f32"] = (Postprocessor(yolo, [TensorSpec("p", (1, 84, 8400), "float32")], letterbox), [p])
    scale = 1 / 255
    q = np.clip(np.rint(p / scale) - 128, -128, 127).astype(np.int8)
    out["yolo_84x8400_int8"] = (Postprocessor(yolo, [TensorSpec("p", (1, 84, 8400), "int8", scale, -128)],
                                              letterbox), [q])
    boxes = np.sort(rng.uniform(0, 1, (1, 100, 2, 2)), axis=2).reshape(1, 100, 4).astype(np.float32)
    tfl = PostprocessSpec(Task.DETECTION, {"boxes": 0, "classes": 1, "scores": 2, "count": 3}, head="tflite_postprocess")
    outs = [TensorSpec("boxes", (1, 100, 4), "float32"), TensorSpec("classes", (1, 100), "float32"),
            TensorSpec("scores", (1, 100), "float32"), TensorSpec("count", (1,), "float32")]
    raw = [boxes, rng.integers(0, 90, (1, 100)).astype(np.float32),
           np.sort(rng.uniform(0, 1, (1, 100)))[:, ::-1].astype(np.float32).copy(), np.array([100], np.float32)]
    out["tflite_postprocess_100"] = (Postprocessor(tfl, outs, PreprocessSpec(height=300, width=300)), raw)
    m = rng.normal(size=(1, 256, 256, 21)).astype(np.float32)
    seg = PostprocessSpec(Task.SEGMENTATION, {"mask": 0})
    out["segmentation_256x256x21"] = (Postprocessor(seg, [TensorSpec("m", (1, 256, 256, 21), "float32")],
                                                    PreprocessSpec(height=256, width=256, resize="letterbox")), [m])
    found = {}
    for name, (post, r) in out.items():
        res = post(r, FRAME_HW)
        found[name] = len(res.detections) if res.detections is not None else len(res.class_areas or {})
    return out, found


def main() -> PostprocessResult:
    todo, found = cases()
    stats = side_by_side({n: (lambda p=p, r=r: p(r, FRAME_HW)) for n, (p, r) in todo.items()}, rounds=5, per_round=20)
    res = PostprocessResult(environment(), stats, found)
    write_json(RESULTS / "postprocess.json", res)
    for n, s in stats.items():
        print(f"{n:28s} median {s.median_ms:7.2f} ms  p90 {s.p90_ms:7.2f} ms  ({found[n]} results)")
    return res


if __name__ == "__main__":
    main()
