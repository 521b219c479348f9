"""device/metrics.py: mAP and mIoU against hand-computed cases; annotation readers and their bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from keras_edge.device.contract.errors import DataError
from keras_edge.device.outputs.metrics import (GroundTruth, average_precision, box_iou, detection_map, load_annotations,
                                       mean_iou, read_coco, read_masks, read_yolo)
from keras_edge.device.outputs.postprocess import Detection


def gt(boxes, classes):
    return GroundTruth(np.array(boxes, np.float64).reshape(-1, 4), np.array(classes))


def det(box, score, c=0):
    return Detection(tuple(float(v) for v in box), score, c)


# ------------------------------------------------------------------------------------------------ mAP

def test_perfect_predictions_score_one():
    truths = [gt([[0, 0, 10, 10], [20, 20, 40, 50]], [0, 1]), gt([[5, 5, 15, 25]], [1])]
    preds = [[det(b, 0.9, int(c)) for b, c in zip(t.boxes, t.classes)] for t in truths]
    m = detection_map(preds, truths, 2)
    assert m["map50"] == 1.0 and m["map50_95"] == 1.0 and m["n_images"] == 2
    assert m["per_class"][1]["n_truth"] == 2


@pytest.mark.parametrize("height,iou,n_hit", [(7.2, 0.72, 5), (7.5, 0.75, 6), (4.9, 0.49, 0), (10, 1.0, 10)])
def test_iou_between_thresholds(height, iou, n_hit):
    assert box_iou(np.array([[0, 0, 10, height]]), np.array([[0, 0, 10, 10]]))[0, 0] == pytest.approx(iou)
    m = detection_map([[det([0, 0, 10, height], 0.8)]], [gt([[0, 0, 10, 10]], [0])], 1)
    assert m["map50"] == (1.0 if n_hit else 0.0)
    assert m["map50_95"] == pytest.approx(n_hit / 10)      # an IoU exactly on a threshold counts


def test_known_precision_recall_curve():
    # 4 truths over 2 images; detections by score: TP, FP, TP, FP, TP (3 of 4 found)
    truths = [gt([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 0]), gt([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0])]
    preds = [[det([0, 0, 10, 10], 0.9), det([100, 100, 110, 110], 0.8), det([20, 0, 30, 10], 0.5)],
             [det([0, 0, 10, 10], 0.7), det([70, 70, 80, 80], 0.6)]]
    # precision 1, .5, .67, .5, .6 at recall .25, .25, .5, .5, .75 → envelope 1 (r ≤ .25), 2/3 (≤ .5), .6 (≤ .75)
    recall_points = np.linspace(0, 1, 101)
    want = (np.sum(recall_points <= 0.25) * 1.0 + np.sum((recall_points > 0.25) & (recall_points <= 0.5)) * 2 / 3
            + np.sum((recall_points > 0.5) & (recall_points <= 0.75)) * 0.6) / 101
    assert want == pytest.approx((26 + 25 * 2 / 3 + 25 * 0.6) / 101)
    m = detection_map(preds, truths, 1)
    assert m["map50"] == pytest.approx(want) and m["map50_95"] == pytest.approx(want)
    assert average_precision(np.array([1, 0, 1, 0, 1]), 4) == pytest.approx(want)


def test_false_positives_of_another_class_and_duplicates():
    truths = [gt([[0, 0, 10, 10]], [0])]
    # a class-1 box on the class-0 object: class 1 has no truth, it is left out of the mean
    m = detection_map([[det([0, 0, 10, 10], 0.95, 1), det([0, 0, 10, 10], 0.9, 0)]], truths, 2)
    assert m["map50"] == 1.0 and m["per_class"][1]["ap50"] is None and m["per_class"][1]["n_pred"] == 1
    # a duplicate of class 0 ranked first matches; the second is a false positive after full recall
    m = detection_map([[det([0, 0, 10, 10], 0.9), det([0, 0, 10, 10], 0.8)]], truths, 1)
    assert m["map50"] == 1.0
    # the wrong class scored above the right one does not hurt class 0, but a miss of class 0 does
    m = detection_map([[det([0, 0, 10, 10], 0.9, 1)]], [gt([[0, 0, 10, 10]], [0])], 2)
    assert m["map50"] == 0.0


def test_images_without_truth_add_false_positives():
    truths = [gt([[0, 0, 10, 10]], [0]), gt([], [])]
    preds = [[det([0, 0, 10, 10], 0.5)], [det([0, 0, 10, 10], 0.9)]]
    m = detection_map(preds, truths, 1)
    assert m["map50"] == pytest.approx(0.5)        # precision 0 then 1/2 at recall 1 → envelope 0.5 everywhere
    assert detection_map([[], []], truths, 1)["map50"] == 0.0
    with pytest.raises(DataError, match="no objects"):
        detection_map([[], []], [gt([], []), gt([], [])], 1)
    with pytest.raises(DataError, match="2 prediction lists for 1"):
        detection_map([[], []], [gt([], [])], 1)


def test_against_pycocotools_when_installed():
    """The venv has no pycocotools, so the hand cases above stand in; with it, agree (checked with pycocotools
    2.0.11 on PYTHONPATH for seeds 0-12: equal to 1e-9)."""
    coco_mod = pytest.importorskip("pycocotools.coco", reason="pycocotools not installed: hand-computed cases only")
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    truths, preds = [], []
    for _ in range(6):
        k = int(rng.integers(1, 5))
        xy = rng.uniform(0, 80, (k, 2))
        wh = rng.uniform(10, 30, (k, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        cls = rng.integers(0, 2, k)
        truths.append(gt(boxes, cls))
        jitter = boxes + rng.normal(0, 2, boxes.shape)
        jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)     # keep boxes non-empty
        preds.append([det(b, float(rng.uniform(0.1, 1)), int(c if rng.uniform() > 0.2 else 1 - c))
                      for b, c in zip(jitter, cls)])
    ds = {"images": [{"id": i + 1, "width": 120, "height": 120} for i in range(6)], "categories": [{"id": 1}, {"id": 2}],
          "annotations": [{"id": n + 1, "image_id": i + 1, "category_id": int(c) + 1, "iscrowd": 0,
                           "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "area": (b[2] - b[0]) * (b[3] - b[1])}
                          for n, (i, b, c) in enumerate((i, b, c) for i, t in enumerate(truths)
                                                        for b, c in zip(t.boxes, t.classes))]}
    cg = coco_mod.COCO()
    cg.dataset = ds
    cg.createIndex()
    cd = cg.loadRes([{"image_id": i + 1, "category_id": d.class_id + 1, "score": d.score,
                      "bbox": [d.box[0], d.box[1], d.box[2] - d.box[0], d.box[3] - d.box[1]]}
                     for i, p in enumerate(preds) for d in p])
    ev = COCOeval(cg, cd, "bbox")
    ev.params.areaRng = [[0, 1e10]]
    ev.params.areaRngLbl = ["all"]
    ev.evaluate()
    ev.accumulate()
    prec = ev.eval["precision"][:, :, :, 0, -1]
    m = detection_map(preds, truths, 2)
    assert m["map50"] == pytest.approx(prec[0].mean(), abs=1e-9)
    assert m["map50_95"] == pytest.approx(prec.mean(), abs=1e-9)


# ------------------------------------------------------------------------------------------------ mIoU

def test_mean_iou_by_hand():
    truth = np.array([[0, 0], [1, 1]], np.uint8)
    pred = np.array([[0, 1], [1, 1]], np.uint8)
    m = mean_iou([pred], [truth], 3)
    assert m["per_class"] == {0: 0.5, 1: pytest.approx(2 / 3), 2: None}
    assert m["miou"] == pytest.approx((0.5 + 2 / 3) / 2) and m["pixel_accuracy"] == 0.75
    # accumulated over the dataset, not averaged per image; ignored truth pixels and unknown predictions
    t2 = np.array([[2, 255], [2, 2]], np.uint8)
    p2 = np.array([[255, 0], [2, 2]], np.uint8)
    m = mean_iou([pred, p2], [truth, t2], 3)
    assert m["per_class"] == {0: 0.5, 1: pytest.approx(2 / 3), 2: pytest.approx(2 / 3)}
    assert m["pixel_accuracy"] == pytest.approx(5 / 7)
    with pytest.raises(DataError, match="predicted mask 0 is"):
        mean_iou([pred[:1]], [truth], 3)


# ------------------------------------------------------------------------------------------------ readers

@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("ds") / "images" / "val"
    root.mkdir(parents=True)
    out = []
    for name, img in (("cat", skdata.chelsea()), ("coffee", skdata.coffee())):
        small = cv2.resize(img[:, :, ::-1], (100, 60))               # 100 wide, 60 high
        p = root / f"{name}.jpg"
        cv2.imwrite(str(p), small)
        out.append(p)
    return out


def write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_read_yolo_beside_mirrored_and_by_stem(images, tmp_path):
    for p in images:
        p.with_suffix(".txt").unlink(missing_ok=True)
    write(images[0].with_suffix(".txt"), "1 0.5 0.5 0.2 0.5\n\n0 0.1 0.1 0.2 0.2\n")
    t = read_yolo(images, None, 2)
    np.testing.assert_allclose(t[0].boxes, [[40, 15, 60, 45], [0, 0, 20, 12]])
    assert t[0].classes.tolist() == [1, 0] and len(t[1].boxes) == 0     # no .txt: no objects
    images[0].with_suffix(".txt").unlink()
    # mirrored: dataset/images/val/cat.jpg ↔ dataset/labels/val/cat.txt
    mirrored = write(images[0].parents[2] / "labels" / "val" / "cat.txt", "0 0.5 0.5 1.0 1.0\n")
    assert read_yolo(images, None, 2)[0].boxes.tolist() == [[0, 0, 100, 60]]
    assert read_yolo(images, images[0].parents[2] / "labels", 2)[0].boxes.tolist() == [[0, 0, 100, 60]]
    mirrored.unlink()
    flat = tmp_path / "flat"
    write(flat / "coffee.txt", "0 0.5 0.5 0.5 0.5\n")
    t = read_yolo(images, flat, 1)
    assert len(t[0].boxes) == 0 and t[1].boxes.tolist() == [[25, 15, 75, 45]]


@pytest.mark.parametrize("text,words", [
    ("0 0.5 0.5 0.2\n", r"cat.txt:1: 4 fields"),
    ("0 0.5 0.5 0.2 0.2\nx 0.5 0.5 0.2 0.2\n", r"cat.txt:2: 'x 0.5 0.5 0.2 0.2' is not"),
    ("3 0.5 0.5 0.2 0.2\n", r"cat.txt:1: class 3 is not below the model's 2 classes"),
    ("0 0.95 0.5 0.3 0.2\n", r"cat.txt:1: box \[0.800,0.400,1.100,0.600\] lies outside the image"),
    ("0 0.5 0.5 0 0.2\n", r"cat.txt:1: box width/height must be positive"),
])
def test_read_yolo_bad_lines(images, tmp_path, text, words):
    labels = tmp_path / "labels"
    write(labels / "cat.txt", text)
    with pytest.raises(DataError, match=words) as e:
        read_yolo(images, labels, 2)
    assert str(labels / "cat.txt") in e.value.what and "\n" not in str(e.value)


def test_read_yolo_tolerates_a_sliver_outside(images, tmp_path):
    write(tmp_path / "l" / "cat.txt", "0 0.5 0.5 1.01 1.0\n")
    assert read_yolo(images, tmp_path / "l", 1)[0].boxes.tolist() == [[0, 0, 100, 60]]


def test_read_yolo_labels_matching_no_image(images, tmp_path):
    write(tmp_path / "l" / "dog.txt", "0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataError, match="has no .txt file named after any of the 2 images"):
        read_yolo(images, tmp_path / "l", 1)
    with pytest.raises(DataError, match="does not exist"):
        read_yolo(images, tmp_path / "nope", 1)


def coco(images, anns, cats=({"id": 3, "name": "cat"}, {"id": 7, "name": "cup"}), extra_images=()):
    ims = [{"id": i + 1, "file_name": f"val/{p.name}", "width": 100, "height": 60} for i, p in enumerate(images)]
    return {"images": ims + list(extra_images), "annotations": anns, "categories": list(cats)}


def test_read_coco(images, tmp_path):
    p = write(tmp_path / "a.json", json.dumps(coco(images, [
        {"image_id": 1, "category_id": 7, "bbox": [10, 5, 20, 30]},
        {"image_id": 1, "category_id": 3, "bbox": [0, 0, 100, 60]},
        {"image_id": 2, "category_id": 3, "bbox": [50, 10, 10, 10], "iscrowd": 1}])))
    truths, names = read_coco(p, images)
    assert names == ["cat", "cup"]
    assert truths[0].boxes.tolist() == [[10, 5, 30, 35], [0, 0, 100, 60]] and truths[0].classes.tolist() == [1, 0]
    assert len(truths[1].boxes) == 0                   # crowd regions are not objects to find
    t2, names2 = load_annotations(p, images, "detection", 2)
    assert names2 == names and t2[0].boxes.tolist() == truths[0].boxes.tolist()


@pytest.mark.parametrize("doc,words", [
    ("not json", r"cannot read COCO annotations"),
    ({"annotations": []}, r"is not COCO JSON"),
    ("ONE", r"image coffee.jpg is not in"),
    ("OTHER", r"annotation 0 is for image id 9, which is not among the given images"),
    ("UNLISTED", r"annotation 0 is for image id 42, which the file does not list"),
    ("OUTSIDE", r"annotation 0 bbox \[90,10,20,10\] lies outside image cat.jpg \(100x60\)"),
    ("CATEGORY", r"annotation 0 has category 5"),
])
def test_read_coco_bad(images, tmp_path, doc, words):
    if doc == "ONE":
        doc = coco(images[:1], [])
    elif doc == "OTHER":
        doc = coco(images, [{"image_id": 9, "category_id": 3, "bbox": [0, 0, 5, 5]}],
                   extra_images=[{"id": 9, "file_name": "dog.jpg", "width": 10, "height": 10}])
    elif doc == "UNLISTED":
        doc = coco(images, [{"image_id": 42, "category_id": 3, "bbox": [0, 0, 5, 5]}])
    elif doc == "OUTSIDE":
        doc = coco(images, [{"image_id": 1, "category_id": 3, "bbox": [90, 10, 20, 10]}])
    elif doc == "CATEGORY":
        doc = coco(images, [{"image_id": 1, "category_id": 5, "bbox": [0, 0, 5, 5]}])
    p = write(tmp_path / "bad.json", doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(DataError, match=words) as e:
        read_coco(p, images)
    assert "\n" not in str(e.value)


def test_read_masks_and_their_errors(images, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    m = np.zeros((60, 100), np.uint8)
    m[10:30, 20:50] = 2
    m[0, 0] = 255
    cv2.imwrite(str(masks / "cat.png"), m)
    cv2.imwrite(str(masks / "coffee.png"), np.ones((60, 100), np.uint8))
    got = read_masks(images, masks, 3)
    assert np.array_equal(got[0], m) and (got[1] == 1).all()
    got2, names = load_annotations(masks, images, "segmentation", 3)
    assert names is None and np.array_equal(got2[0], m)
    with pytest.raises(DataError, match=r"cat.png holds class 2, the model has 2 classes"):
        read_masks(images, masks, 2)
    cv2.imwrite(str(masks / "coffee.png"), np.ones((61, 100), np.uint8))
    with pytest.raises(DataError, match=r"coffee.png is 100x61, its image coffee.jpg 100x60"):
        read_masks(images, masks, 3)
    (masks / "coffee.png").unlink()
    with pytest.raises(DataError, match=r"no mask coffee.png in .* for image coffee.jpg"):
        read_masks(images, masks, 3)


def test_load_annotations_dispatch_errors(images, tmp_path):
    with pytest.raises(DataError, match="do not exist"):
        load_annotations(tmp_path / "x", images, "detection", 2)
    write(tmp_path / "m" / "cat.png", "")
    with pytest.raises(DataError, match=r"holds no YOLO .txt files \(it holds .png masks"):
        load_annotations(tmp_path / "m", images, "detection", 2)
    p = write(tmp_path / "a.json", json.dumps(coco(images, [])))
    with pytest.raises(DataError, match="do not fit task segmentation"):
        load_annotations(p, images, "segmentation", 2)
    with pytest.raises(DataError, match="neither a COCO .json nor a folder"):
        load_annotations(write(tmp_path / "a.csv", "x"), images, "detection", 2)
