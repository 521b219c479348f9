"""Third-party-style detectors run bare: one ending in TFLite's TFLite_Detection_PostProcess custom op, and a
YOLO-layout Keras model. Both are built here with TensorFlow (no downloads) and "see" colour: on a grey photo
(scikit-image's camera) a red block is class 0 and a blue block class 1, found on a 4×4 grid of cells."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from keras_edge.device.run.draw import DRAWN
from keras_edge.cli import main

G, S, C = 4, 64, 2          # a 4x4 grid of 16-px cells on a 64x64 input, 2 classes
H, W = 300, 500             # the photo: 4 cells of 75 rows, 4 of 125 columns (stretch to 64x64)
RED = (250, 75, 375, 150)   # x1, y1, x2, y2: cell (row 1, col 2)
BLUE = (0, 225, 125, 300)   # cell (row 3, col 0)


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _cell_scores(x, ops):
    """(1,G*G,2) red/blue scores per cell of a (1,S,S,3) RGB input in [0,1]."""
    cells = ops.average_pool(x, S // G, S // G, "valid")
    red = cells[..., 0] - 0.5 * (cells[..., 1] + cells[..., 2])
    blue = cells[..., 2] - 0.5 * (cells[..., 0] + cells[..., 1])
    return ops.clip(ops.reshape(ops.stack([red, blue], -1), (1, G * G, C)), 0.0, 1.0)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    cy, cx = np.meshgrid((np.arange(G) + 0.5) / G, (np.arange(G) + 0.5) / G, indexing="ij")
    size = np.full(G * G, 1 / G)
    return cy.ravel(), cx.ravel(), size


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    import keras
    import tensorflow as tf
    from keras import ops

    root = tmp_path_factory.mktemp("detectors")
    cy, cx, size = _grid()
    anchors = np.stack([cy, cx, size, size], 1).astype(np.float32)       # [ycenter, xcenter, h, w]
    attrs = {"max_detections": ("i", 10), "max_classes_per_detection": ("i", 1), "use_regular_nms": ("b", "false"),
             "nms_score_threshold": ("f", 0.3), "nms_iou_threshold": ("f", 0.5), "y_scale": ("f", 10.0),
             "x_scale": ("f", 10.0), "h_scale": ("f", 5.0), "w_scale": ("f", 5.0), "num_classes": ("i", C)}
    # the TF Object Detection API's way: an empty function the converter replaces with the custom op
    signature = " ".join(['name: "TFLite_Detection_PostProcess"'] +
                         [f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, (t, v) in attrs.items()])

    @tf.function(experimental_implements=signature)
    def detection_postprocess(box_encodings, class_predictions, anchor_boxes):
        z = tf.constant(0.0)
        return z, z, z, z

    class Detector(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, S, S, 3], tf.float32)])
        def __call__(self, x):
            scores = _cell_scores(x, _TfOps)
            with_background = tf.concat([tf.zeros([1, G * G, 1]), scores], -1)
            return detection_postprocess(tf.zeros([1, G * G, 4]), with_background, tf.constant(anchors))

    det = Detector()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([det.__call__.get_concrete_function()], det)
    conv.allow_custom_ops = True
    (root / "ssd_postprocess.tflite").write_bytes(conv.convert())

    boxes = np.stack([cx, cy, size, size], 1).astype(np.float32)[None]   # [cx, cy, w, h] normalised

    class YoloGrid(keras.layers.Layer):
        def call(self, x):
            return ops.concatenate([ops.convert_to_tensor(boxes), _cell_scores(x, ops)], -1)

    inp = keras.Input((S, S, 3), batch_size=1)
    yolo = keras.Model(inp, YoloGrid()(inp))
    (root / "yolo_grid.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(yolo).convert())
    (root / "labels.txt").write_text("red\nblue\n")

    class RedMask(keras.layers.Layer):      # per-pixel scores: (background, red)
        def call(self, x):
            red = ops.clip(x[..., 0:1] - 0.5 * (x[..., 1:2] + x[..., 2:3]), 0.0, 1.0)
            return ops.concatenate([0.5 - 0.0 * red, red], -1)

    seg = keras.Model(inp, RedMask()(inp))
    (root / "red_mask.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(seg).convert())
    return {"ssd": root / "ssd_postprocess.tflite", "yolo": root / "yolo_grid.tflite", "labels": root / "labels.txt",
            "seg": root / "red_mask.tflite"}


class _TfOps:
    """The few ops _cell_scores needs, for the plain-TensorFlow detector."""

    @staticmethod
    def average_pool(x, k, s, padding):
        import tensorflow as tf

        return tf.nn.avg_pool2d(x, k, s, padding.upper())

    @staticmethod
    def stack(xs, axis):
        import tensorflow as tf

        return tf.stack(xs, axis)

    @staticmethod
    def reshape(x, shape):
        import tensorflow as tf

        return tf.reshape(x, shape)

    @staticmethod
    def clip(x, lo, hi):
        import tensorflow as tf

        return tf.clip_by_value(x, lo, hi)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    grey = cv2.resize(skdata.camera(), (W, H))
    img = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    x1, y1, x2, y2 = RED
    img[y1:y2, x1:x2] = (0, 0, 255)
    x1, y1, x2, y2 = BLUE
    img[y1:y2, x1:x2] = (255, 0, 0)
    path = tmp_path_factory.mktemp("scene") / "scene.jpg"
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def check_boxes(dets: list[dict], labels=("red", "blue")) -> None:
    assert [d["class_id"] for d in dets] == [0, 1], dets
    for d, want, name in zip(dets, (RED, BLUE), labels):
        assert np.abs(np.array(d["box"]) - np.array(want)).max() <= 2.0, (d, want)   # original-image pixels
        assert d["score"] > 0.8
        if labels[0] is not None:
            assert d["label"] == name


def test_tflite_detection_postprocess_bare(models, scene, tmp_path):
    draw = tmp_path / "drawn"
    p = subprocess.run([sys.executable, "-m", "keras_edge", "run", str(models["ssd"]), str(scene), "--json",
                        "--draw", str(draw), "--preprocess", "unit", "--labels", str(models["labels"])],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    row = json.loads(p.stdout.splitlines()[0])
    assert row["task"]["task"] == "detection" and "postprocess" in row["timing_ms"]
    check_boxes(row["task"]["detections"])
    assert "TFLite_Detection_PostProcess" in p.stderr and "note:" in p.stderr       # the assumption, said
    drawn = cv2.imread(str(draw / "scene.jpg"))
    original = cv2.imread(str(scene))
    assert drawn.shape == original.shape
    # the box outline is drawn along the blue cell's top edge (a line within a pixel of y = 225)
    diff = np.abs(drawn.astype(int) - original.astype(int)).sum(2)
    assert (diff[BLUE[1] - 1:BLUE[1] + 2, BLUE[0] + 5:BLUE[2] - 5].max(0) > 60).mean() > 0.9
    assert diff[H // 2 - 20:H // 2 + 20, 150:200].max() < 30          # away from any box: untouched


def test_tflite_detection_postprocess_text_and_video(capsys, models, scene, tmp_path):
    code, out, err = cli(capsys, "run", models["ssd"], scene, "--preprocess", "unit", "--score-threshold", "0.5")
    assert code == 0, err
    assert out.startswith(f"{scene}: 2 objects: class 0 ") and "[250,75,375,150]" in out
    assert "postprocessing" in out.splitlines()[-1]          # the summary: its mean apart from inference
    video = tmp_path / "clip.mp4"
    frame = cv2.imread(str(scene))
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (W, H))
    for _ in range(5):
        wr.write(frame)
    wr.release()
    draw = tmp_path / "drawn"
    code, out, err = cli(capsys, "run", models["ssd"], video, "--preprocess", "unit", "--draw", draw, "--json")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 5
    for r in rows:
        check_boxes(r["task"]["detections"], (None, None))
    assert sorted(p.name for p in draw.iterdir()) == sorted(["clip.mp4", DRAWN])  # no partial file left
    # drawing into the inputs' own folder never overwrites an input
    code, out, err = cli(capsys, "run", models["ssd"], video, "--preprocess", "unit", "--draw", tmp_path,
                         "--max-frames", "2")
    assert code == 0 and (tmp_path / "clip-2.mp4").is_file() and video.stat().st_size > 0, err
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()
    cap = cv2.VideoCapture(str(draw / "clip.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 5 and abs(cap.get(cv2.CAP_PROP_FPS) - 12.0) < 0.5
    cap.release()


def test_yolo_layout_bare_is_raw_then_decoded_with_flags(capsys, models, scene):
    code, out, err = cli(capsys, "run", models["yolo"], scene, "--preprocess", "unit", "--json")
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    assert "task" not in row and [o["shape"] for o in row["outputs"]] == [[1, G * G, 4 + C]]   # honest: raw
    assert "outputs reported raw" in err
    code, out, err = cli(capsys, "run", models["yolo"], scene, "--preprocess", "unit", "--json",
                         "--task", "detection", "--head", "yolo", "--labels", models["labels"])
    assert code == 0, err
    check_boxes(json.loads(out.splitlines()[0])["task"]["detections"])
    code, out, err = cli(capsys, "run", models["yolo"], scene, "--preprocess", "unit", "--task", "detection",
                         "--head", "yolo", "--labels", models["labels"])
    assert code == 0 and re.search(r": 2 objects: red 0\.9\d \[250,75,375,150\], blue 0\.9\d \[0,225,125,300\]", out), out


@pytest.mark.parametrize("args,words", [
    (["--head", "yolo"], "--head applies to task detection only"),
    (["--task", "detection", "--head", "yolo", "--score-threshold", "1.5"], "--score-threshold is 1.5, not between 0"),
    (["--task", "detection", "--head", "ssd", "--anchors", "missing.npy"], "--anchors missing.npy: no such file"),
    (["--task", "detection"], "--head is needed with task detection"),
    (["--task", "segmentation"], "the model's outputs do not fit task segmentation"),
    (["--task", "detection", "--head", "yolo"], "do not fit task detection: the yolo head wants one output"),
])
def test_bad_task_flags_are_one_line(capsys, models, scene, args, words):
    target = models["ssd"] if "segmentation" in args or args == ["--task", "detection", "--head", "yolo"] \
        else models["yolo"]
    code, out, err = cli(capsys, "run", target, scene, "--preprocess", "unit", *args)
    assert code != 0 and out == ""
    lines = [x for x in err.splitlines() if not x.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], err


def test_segmentation_bare_with_task_flag(capsys, models, scene, tmp_path):
    draw = tmp_path / "drawn"
    code, out, err = cli(capsys, "run", models["seg"], scene, "--preprocess", "unit", "--task", "segmentation",
                         "--json", "--draw", draw)
    assert code == 0, err
    task = json.loads(out.splitlines()[0])["task"]
    assert task["mask_hw"] == [H, W]                                  # the class map is at the photo's size
    areas = {a["class_id"]: a["fraction"] for a in task["class_areas"]}
    red_area = (RED[2] - RED[0]) * (RED[3] - RED[1]) / (H * W)      # 6.25% of the photo
    assert abs(areas[1] - red_area) < 0.01 and abs(areas[0] - (1 - red_area)) < 0.01
    drawn = cv2.imread(str(draw / "scene.jpg")).astype(int)
    original = cv2.imread(str(scene)).astype(int)
    inside = (slice(RED[1] + 5, RED[3] - 5), slice(RED[0] + 5, RED[2] - 5))
    assert np.abs(drawn[inside] - original[inside]).mean() > 20       # overlaid in class 1's colour
    code, out, err = cli(capsys, "run", models["seg"], scene, "--preprocess", "unit", "--task", "segmentation")
    assert re.search(r"mask: class 0 9\d\.\d%, class 1 [5-7]\.\d%", out), out
