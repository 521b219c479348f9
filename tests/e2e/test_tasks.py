"""Detection and segmentation end to end: a detector and a segmenter trained in the session on the synthetic
shapes set (tests/synthetic.py), converted (fp32 + int8), run on the board side with ``--draw``, verified;
and each task's bad inputs answered with one ``error:`` line, nothing written.

The models are small and trained briefly: what they reach is recorded in the reports, the assertions check
the plumbing (boxes mapped back to the original images, the task metric driving the budget), and that the
trained models are far better than chance on held-out images.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_edge.device.run.draw import DRAWN
from keras_edge.cli import main

LEAKS = re.compile(r"^\[ ?WARN:|^[IWEF]\d{4} \d\d:\d\d|^\S+\.cc:\d+\]|oneDNN custom operations", re.M)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The synthetic set (train and a separate evaluation set) and both models, trained once."""
    from tests import synthetic as S

    root = tmp_path_factory.mktemp("shapes")
    train = S.write_set(root / "train", 400, seed=1)
    ev = S.write_set(root / "eval", 40, seed=2)
    raw = S.train_detector(train)
    det = root / "detector.keras"
    S.decoded(raw, "normalized").save(det)
    seg = root / "segmenter.keras"
    S.train_segmenter(train).save(seg)
    return {"root": root, "train": train, "eval": ev, "detector": det, "segmenter": seg}


def _convert(argv: list[str], capfd) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(argv)
    out = capfd.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def det_bundle(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("det") / "shapes-det"
    s = shapes
    code = main(["convert", str(s["detector"]), "-o", str(out), "--calib", str(s["train"].images),
                 "--eval", str(s["eval"].images), "--variants", "fp32,int8", "--resize", "letterbox",
                 "--task", "detection", "--head", "yolo", "--objectness", "--annotations", str(s["eval"].labels),
                 "--labels", str(s["train"].names), "--max-accuracy-drop", "0.05", "--search-time", "30", "--no-qat",
                 "--calib-samples", "100", "--import", "tests.synthetic"])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def seg_bundle(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "shapes-seg"
    s = shapes
    code = main(["convert", str(s["segmenter"]), "-o", str(out), "--calib", str(s["train"].images),
                 "--eval", str(s["eval"].images), "--variants", "fp32,int8", "--resize", "letterbox",
                 "--task", "segmentation", "--annotations", str(s["eval"].masks), "--no-ptq", "--no-qat", "--search-time", "20",
                 "--calib-samples", "100"])
    assert code == 0
    return out


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _report(bundle: Path) -> dict:
    return json.loads((bundle / "report.json").read_text())


def test_detector_bundle_records_task_and_scores_variants_by_map(det_bundle):
    from keras_edge.device.contract import bundle as B

    m = B.read_manifest(det_bundle)
    assert m.task is B.Task.DETECTION
    spec = m.postprocessing
    assert spec.head == "yolo" and spec.objectness and spec.num_classes == 3 and spec.box_units == "normalized"
    assert spec.outputs == {"predictions": 0}
    rep = _report(det_bundle)
    keras = rep["keras"]
    assert keras["task_metric"] == "map50_95"
    assert keras["map50"] > 0.15, keras         # far above chance (~0; 0.29 here) on held-out images: boxes map back
    assert 0 < keras["map50_95"] < keras["map50"]
    by = {v["name"]: v["metrics"] for v in rep["variants"] if v["status"] == "ok"}
    assert {"fp32", "int8"} <= set(by)
    assert by["fp32"]["task_fidelity"] > 0.95 and abs(by["fp32"]["map50_95"] - keras["map50_95"]) < 0.01
    for name, mt in by.items():   # the loss the budget and the default use is the task metric's drop
        assert mt["metric_drop"] == pytest.approx(keras["map50_95"] - mt["map50_95"], abs=1e-5), name
        assert mt["verdict"]["loss"] == pytest.approx(mt["metric_drop"], abs=1e-9)
    assert "mAP@0.5:0.95" in m.default_reason
    assert "mAP@0.5" in (det_bundle / "report.md").read_text()


def test_segmenter_bundle_records_task_and_scores_variants_by_miou(seg_bundle):
    from keras_edge.device.contract import bundle as B

    m = B.read_manifest(seg_bundle)
    assert m.task is B.Task.SEGMENTATION and m.postprocessing.num_classes == 4
    rep = _report(seg_bundle)
    assert rep["keras"]["task_metric"] == "miou" and rep["keras"]["miou"] > 0.3, rep["keras"]
    by = {v["name"]: v["metrics"] for v in rep["variants"] if v["status"] == "ok"}
    assert by["fp32"]["task_fidelity"] > 0.97
    assert all(mt["metric_drop"] == pytest.approx(rep["keras"]["miou"] - mt["miou"], abs=1e-5) for mt in by.values())


def _run_draw(bundle: Path, image: Path, draw: Path, variant: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "run", str(bundle), str(image), "--json", "--draw", str(draw),
                           "--variant", variant], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return json.loads(lines[0])


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_run_draw_detector_boxes_in_original_pixels(det_bundle, shapes, tmp_path, variant):
    import cv2

    ev = shapes["eval"]
    img = ev.paths[0]
    res = _run_draw(det_bundle, img, tmp_path / "drawn", variant)
    h, w = ev.samples[0].mask.shape
    dets = res["task"]["detections"]
    for d in dets:
        x1, y1, x2, y2 = d["box"]
        assert -1 <= x1 < x2 <= w + 1 and -1 <= y1 < y2 <= h + 1, (d, w, h)
        assert d["label"] in ("circle", "square", "triangle")
    drawn = [p for p in (tmp_path / "drawn").iterdir() if p.name != DRAWN]   # DRAWN: what keras-edge drew there
    assert len(drawn) == 1
    out = cv2.imread(str(drawn[0]))
    assert out.shape[:2] == (h, w)
    assert not np.array_equal(out, cv2.imread(str(img))) or not dets


def test_run_draw_segmenter_mask_at_image_size(seg_bundle, shapes, tmp_path):
    ev = shapes["eval"]
    res = _run_draw(seg_bundle, ev.paths[1], tmp_path / "drawn", "int8")
    h, w = ev.samples[1].mask.shape
    assert res["task"]["mask_hw"] == [h, w]
    assert abs(sum(a["fraction"] for a in res["task"]["class_areas"]) - 1.0) < 1e-3
    assert len([p for p in (tmp_path / "drawn").iterdir() if p.name != DRAWN]) == 1


@pytest.mark.parametrize("which", ["det", "seg"])
def test_verify_task_bundles(which, det_bundle, seg_bundle):
    bundle = det_bundle if which == "det" else seg_bundle
    proc = subprocess.run([sys.executable, "-m", "keras_edge", "verify", str(bundle)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- bad inputs: one `error:` line each, nothing written -------------------------------------------------------

@pytest.fixture(scope="module")
def bad(shapes, tmp_path_factory):
    """Annotation files that do not fit: other images' labels, a box outside its image, a classifier model."""
    import keras

    from tests import synthetic as S

    root = tmp_path_factory.mktemp("bad")
    other = S.write_set(root / "other", 4, seed=9)
    for p in other.labels.iterdir():                     # names that match none of the evaluation images
        p.rename(p.with_name("x" + p.name))
    coco = json.loads(shapes["eval"].coco.read_text())
    for im in coco["images"]:
        im["file_name"] = "nothere_" + im["file_name"]
    (root / "other.json").write_text(json.dumps(coco))
    outside = root / "outside"
    outside.mkdir()
    for p in shapes["eval"].labels.iterdir():
        (outside / p.name).write_text(p.read_text())
    first = sorted(outside.iterdir())[0]
    first.write_text("0 0.95 0.5 0.4 0.3\n")             # x2 = 1.15 of the width: outside the image
    inp = keras.Input((S.INPUT, S.INPUT, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(x))
    clf = root / "classifier.keras"
    keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x)).save(clf)
    return {"labels_other": other.labels, "coco_other": root / "other.json", "outside": outside, "outside_file": first.name,
            "classifier": clf}


BAD = {
    "labels-match-no-image": (lambda s, b: ["--task", "detection", "--head", "yolo", "--objectness", "--annotations", b["labels_other"]],
                              "detector", "no .txt file named after any of the"),
    "coco-matches-no-image": (lambda s, b: ["--task", "detection", "--head", "yolo", "--objectness", "--annotations", b["coco_other"]],
                              "detector", "is not in"),
    "box-outside-image": (lambda s, b: ["--task", "detection", "--head", "yolo", "--objectness", "--annotations", b["outside"]],
                          "detector", "outside the image"),
    "classifier-as-yolo": (lambda s, b: ["--task", "detection", "--head", "yolo"], "classifier",
                           "do not fit task detection"),
    "annotations-missing": (lambda s, b: ["--task", "detection", "--head", "yolo", "--annotations", s["root"] / "nope"],
                            "detector", "--annotations"),
    "segmentation-without-masks": (lambda s, b: ["--task", "segmentation", "--annotations", s["eval"].labels],
                                   "segmenter", "holds no .png masks"),
    "segmentation-on-detector": (lambda s, b: ["--task", "segmentation"], "detector", "do not fit task segmentation"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_task_input(case, shapes, bad, tmp_path, capfd):
    args, model, expect = BAD[case]
    model_path = bad["classifier"] if model == "classifier" else shapes[model]
    out = tmp_path / "bundle"
    argv = [str(a) for a in ["convert", model_path, "-o", out, "--calib", shapes["train"].images, "--eval",
                             shapes["eval"].images, "--variants", "fp32", "--resize", "letterbox",
                             "--calib-samples", "20", *args(shapes, bad)]]
    code, stdout, stderr = _convert(argv, capfd)
    assert code == 2, stderr
    assert "Traceback" not in stdout + stderr and not LEAKS.search(stderr), stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and lines[-1] == errors[0], stderr
    assert expect in errors[0], errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "something was written"


def test_coco_annotations_for_a_held_out_part_of_calib(shapes, tmp_path, capfd):
    """No --eval: a fifth of --calib is held out, and a COCO file annotating the whole folder scores it."""
    s = shapes
    out = tmp_path / "coco-det"
    code, _, stderr = _convert(["convert", str(s["detector"]), "-o", str(out), "--calib", str(s["eval"].images),
                                "--variants", "fp32", "--resize", "letterbox", "--task", "detection", "--head", "yolo",
                                "--objectness", "--annotations", str(s["eval"].coco)], capfd)
    assert code == 0, stderr
    keras = _report(out)["keras"]
    assert keras["eval_samples"] == 8 and keras["map50"] > 0, keras


# --- an SSD-style head: anchors + deltas + class scores (with background), anchors copied into the bundle --------

G, SIZE, IMG_H, IMG_W = 4, 64, 300, 500


@pytest.fixture(scope="module")
def ssd_world(tmp_path_factory):
    """A two-output grid "detector" that sees colour (a red block is class 0, a blue one class 1, each filling one
    anchor cell), images of such blocks on scikit-image photos, exact YOLO labels, and its anchors."""
    import cv2
    import keras
    from keras import ops
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("ssd")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(3)
    photos = [skdata.camera(), skdata.brick(), skdata.gravel(), skdata.grass()]
    ch, cw = IMG_H // G, IMG_W // G
    for i in range(16):
        img = cv2.cvtColor(cv2.resize(photos[i % 4], (IMG_W, IMG_H)), cv2.COLOR_GRAY2BGR)
        cells = rng.choice(G * G, 2, replace=False)
        lines = []
        for k, (cell, colour) in enumerate(zip(cells, ((0, 0, 255), (255, 0, 0)))):
            r, c = divmod(int(cell), G)
            img[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = colour
            lines.append(f"{k} {(c + 0.5) / G:.6f} {(r + 0.5) / G:.6f} {1 / G:.6f} {1 / G:.6f}")
        assert cv2.imwrite(str(images / f"s_{i:02d}.png"), img)
        (labels / f"s_{i:02d}.txt").write_text("\n".join(lines) + "\n")

    class CellScores(keras.layers.Layer):
        def call(self, x):
            cells = ops.average_pool(x, SIZE // G, SIZE // G, padding="valid")
            red = cells[..., 0] - 0.5 * (cells[..., 1] + cells[..., 2])
            blue = cells[..., 2] - 0.5 * (cells[..., 0] + cells[..., 1])
            background = 0.1 + 0.0 * red
            return ops.clip(ops.reshape(ops.stack([background, red, blue], -1), (-1, G * G, 3)), 0.0, 1.0)

    inp = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(4, SIZE // G, strides=SIZE // G, name="box_conv")
    deltas = keras.layers.Reshape((G * G, 4), name="deltas")(conv(inp))
    model = keras.Model(inp, [deltas, CellScores(name="scores")(inp)])
    w = np.zeros((SIZE // G, SIZE // G, 3, 4), np.float32)
    w[..., 0, 2] = 1e-4
    conv.set_weights([w, np.zeros(4, np.float32)])
    cy, cx = np.meshgrid((np.arange(G) + 0.5) / G, (np.arange(G) + 0.5) / G, indexing="ij")
    anchors = root / "grid_anchors.npy"
    np.save(anchors, np.stack([cy.ravel(), cx.ravel(), np.full(G * G, 1 / G), np.full(G * G, 1 / G)], 1))
    return {"root": root, "images": images, "labels": labels, "model": model, "anchors": anchors}


def test_ssd_head_converts_with_its_anchors_and_scores_by_map(ssd_world, tmp_path, capfd):
    from keras_edge.device.contract import bundle as B
    from keras_edge.device.outputs.task_options import TaskOptions
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions

    w = ssd_world
    out = tmp_path / "grid-ssd"
    res = convert(ConvertConfig(model=w["model"], out=out, calib=w["images"], eval=w["images"], variants=("fp32", "int8"),
                                preprocess=PreprocessOptions(preset="unit"), annotations=w["labels"], name="grid",
                                task_options=TaskOptions(task="detection", head="ssd", anchors=w["anchors"],
                                                         score_threshold=0.3)))
    m = B.read_manifest(out)
    spec = m.postprocessing
    assert spec.head == "ssd" and spec.anchors == "anchors.npy" and spec.background == 0 and spec.num_classes == 2
    assert np.array_equal(np.load(out / "anchors.npy"), np.load(w["anchors"]))
    keras = res.report.keras
    assert keras["map50"] == pytest.approx(1.0) and keras["map50_95"] > 0.9, keras
    fp32 = next(v for v in res.variants if v.name == "fp32")
    assert fp32.metrics["map50"] == pytest.approx(1.0) and fp32.metrics["task_fidelity"] > 0.99
    capfd.readouterr()
    assert main(["run", str(out), str(w["images"] / "s_00.png"), "--json", "--variant", "int8"]) == 0
    row = json.loads(capfd.readouterr().out.splitlines()[0])
    want = [ln.split()[0] for ln in (w["labels"] / "s_00.txt").read_text().splitlines()]
    assert sorted(str(d["class_id"]) for d in row["task"]["detections"]) == sorted(want)
    assert main(["verify", str(out)]) == 0, capfd.readouterr().out   # both outputs against reference.npz, any order
