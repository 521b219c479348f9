"""Task metrics and annotation readers (numpy + OpenCV, no TensorFlow).

- :func:`detection_map`: COCO-style mAP@0.5 and mAP@0.5:0.95 (101-point interpolated precision, mean over
  the classes that have ground truth).
- :func:`mean_iou`: segmentation IoU accumulated over the dataset per class.
- Readers: YOLO ``.txt`` labels, COCO JSON, PNG class-index masks; each failure is one ``DataError`` naming
  the file (and line).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..contract.errors import DataError
from .postprocess import UNKNOWN, Detection
from ..contract.tasks import Task

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
BOX_TOLERANCE = 0.01   # how far (fraction of the image) a labelled box may stick out before it is an error


@dataclass(frozen=True)
class GroundTruth:
    boxes: np.ndarray     # (K, 4) float x1, y1, x2, y2 in pixels of the original image
    classes: np.ndarray   # (K,) int

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, np.float64).reshape(-1, 4))
        object.__setattr__(self, "classes", np.asarray(self.classes, np.int64).reshape(-1))
        if len(self.boxes) != len(self.classes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.classes)} classes")


# ------------------------------------------------------------------------------------------ detection

def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes (continuous coordinates, area = w*h)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(tp: np.ndarray, n_truth: int) -> float:
    """COCO 101-point interpolated AP from true-positive flags of detections sorted by score (best first)."""
    if n_truth == 0:
        return float("nan")
    tp = np.asarray(tp, np.float64)
    if tp.size == 0:
        return 0.0
    ctp = np.cumsum(tp)
    cfp = np.cumsum(1.0 - tp)
    recall = ctp / n_truth
    precision = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
    # precision envelope: the best precision at any recall at or beyond each point
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, RECALL_POINTS, side="left")
    q = np.where(idx < len(envelope), envelope[np.minimum(idx, len(envelope) - 1)], 0.0)
    return float(q.mean())


def _match(dets: list[tuple[float, int, np.ndarray]], gts: dict[int, np.ndarray], thr: float) -> np.ndarray:
    """COCO greedy matching: each detection (best score first) takes the unmatched truth of best IoU ≥ thr."""
    used = {k: np.zeros(len(v), bool) for k, v in gts.items()}
    tp = np.zeros(len(dets))
    for n, (_, img, box) in enumerate(dets):
        g = gts.get(img)
        if g is None or len(g) == 0:
            continue
        ious = box_iou(box[None], g)[0]
        ious[used[img]] = -1.0
        best = int(np.argmax(ious))
        if ious[best] >= thr - 1e-12:
            used[img][best] = True
            tp[n] = 1.0
    return tp


def detection_map(predictions: Sequence[Sequence[Detection]], truths: Sequence[GroundTruth],
                  num_classes: int) -> dict[str, Any]:
    """COCO-style mAP@0.5 and mAP@0.5:0.95 over a dataset (one prediction list and one truth per image)."""
    if len(predictions) != len(truths):
        raise DataError(f"{len(predictions)} prediction lists for {len(truths)} annotated images",
                        "give one prediction list per annotated image")
    per_class: dict[int, dict[str, Any]] = {}
    for c in range(num_classes):
        gts = {i: t.boxes[t.classes == c] for i, t in enumerate(truths)}
        n_truth = int(sum(len(v) for v in gts.values()))
        dets = [(float(d.score), i, np.asarray(d.box, np.float64))
                for i, p in enumerate(predictions) for d in p if d.class_id == c]
        dets.sort(key=lambda x: -x[0])   # stable: ties keep image order
        if n_truth == 0:
            per_class[c] = {"ap50": None, "ap50_95": None, "n_truth": 0, "n_pred": len(dets)}
            continue
        aps = [average_precision(_match(dets, gts, float(t)), n_truth) for t in IOU_THRESHOLDS]
        per_class[c] = {"ap50": aps[0], "ap50_95": float(np.mean(aps)), "n_truth": n_truth, "n_pred": len(dets)}
    scored = [v for v in per_class.values() if v["ap50"] is not None]
    if not scored:
        raise DataError("the annotations hold no objects of any class", "evaluate on images with labelled objects")
    return {"map50": float(np.mean([v["ap50"] for v in scored])),
            "map50_95": float(np.mean([v["ap50_95"] for v in scored])),
            "per_class": per_class, "n_images": len(truths)}


# --------------------------------------------------------------------------------------- segmentation

def mean_iou(predicted: Sequence[np.ndarray], truths: Sequence[np.ndarray], num_classes: int,
             ignore: int = UNKNOWN) -> dict[str, Any]:
    """Per-class IoU accumulated over all images; the mean over classes present in truth or prediction.

    Truth pixels equal to ``ignore`` are skipped; a predicted ``ignore`` (unknown) on a labelled pixel counts
    as a miss of the true class.
    """
    if len(predicted) != len(truths):
        raise DataError(f"{len(predicted)} predicted masks for {len(truths)} truth masks", "give one of each per image")
    k = num_classes
    conf = np.zeros((k, k), np.int64)           # truth × prediction
    missed = np.zeros(k, np.int64)              # truth pixels predicted as unknown / out of range
    for n, (p, t) in enumerate(zip(predicted, truths)):
        p, t = np.asarray(p), np.asarray(t)
        if p.shape != t.shape:
            raise DataError(f"predicted mask {n} is {p.shape}, its truth {t.shape}", "map masks to the image size")
        valid = t != ignore
        tv = t[valid].astype(np.int64)
        pv = p[valid].astype(np.int64)
        if tv.size and tv.max() >= k:
            raise DataError(f"truth mask {n} holds class {int(tv.max())}, only {k} classes", "check num_classes")
        ok = (pv >= 0) & (pv < k)
        conf += np.bincount(tv[ok] * k + pv[ok], minlength=k * k).reshape(k, k)
        missed += np.bincount(tv[~ok], minlength=k)
    tp = np.diag(conf).astype(np.float64)
    truth_n = conf.sum(1) + missed
    pred_n = conf.sum(0)
    union = truth_n + pred_n - tp
    per_class: dict[int, float | None] = {}
    for c in range(k):
        per_class[c] = float(tp[c] / union[c]) if union[c] > 0 else None
    present = [v for v in per_class.values() if v is not None]
    total = int(truth_n.sum())
    return {"miou": float(np.mean(present)) if present else 0.0, "per_class": per_class,
            "pixel_accuracy": float(tp.sum() / total) if total else 0.0}


# ------------------------------------------------------------------------------------------ readers

def _image_hw(path: Path) -> tuple[int, int]:
    import cv2

    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if img is None:
        raise DataError(f"cannot read image {path}", "give readable image files")
    return int(img.shape[0]), int(img.shape[1])


def _yolo_label_path(img: Path, labels: Path | None) -> Path | None:
    """The .txt of an image: beside it, or mirroring an ``images/`` dir as YOLO datasets do
    (dataset/images/val/x.jpg ↔ dataset/labels/val/x.txt), or in ``labels`` by the mirrored path or the stem."""
    parts = img.parts
    rel = None
    if "images" in parts[:-1]:
        i = len(parts) - 1 - parts[::-1].index("images")
        rel = Path(*parts[i + 1:]).with_suffix(".txt")
    if labels is None:
        cands = [img.with_suffix(".txt")] + ([Path(*parts[:i], "labels", rel)] if rel is not None else [])
    else:
        cands = ([labels / rel] if rel is not None else []) + [labels / (img.stem + ".txt")]
    for c in cands:
        if c.is_file():
            return c
    return None


def read_yolo(images: Sequence[Path], labels: Path | None, num_classes: int | None) -> list[GroundTruth]:
    """YOLO labels: one ``class cx cy w h`` line per object, normalised to the image; a missing .txt = no objects."""
    images = [Path(p) for p in images]
    if labels is not None:
        labels = Path(labels)
        if not labels.is_dir():
            raise DataError(f"labels folder {labels} does not exist", "give the folder holding the YOLO .txt files")
    paths = [_yolo_label_path(p, labels) for p in images]
    if labels is not None and images and not any(paths):
        raise DataError(f"labels folder {labels} has no .txt file named after any of the {len(images)} images",
                        "name each label file after its image's stem (image.jpg ↔ image.txt)")
    out = []
    for img, lp in zip(images, paths):
        if lp is None:
            out.append(GroundTruth(np.zeros((0, 4)), np.zeros(0, np.int64)))
            continue
        h, w = _image_hw(img)
        boxes, classes = [], []
        try:
            text = lp.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {lp} ({e})", "give YOLO label text files") from None
        for ln, line in enumerate(text.splitlines(), 1):
            f = line.split()
            if not f:
                continue
            where = f"{lp}:{ln}"
            if len(f) != 5:
                raise DataError(f"{where}: {len(f)} fields, a YOLO label line is 'class cx cy w h'",
                                "write one object per line, normalised to the image")
            try:
                c = int(f[0])
                cx, cy, bw, bh = (float(v) for v in f[1:])
            except ValueError:
                raise DataError(f"{where}: {line.strip()!r} is not 'class cx cy w h' numbers",
                                "write an integer class and four normalised numbers") from None
            if c < 0 or (num_classes is not None and c >= num_classes):
                raise DataError(f"{where}: class {c} is not below the model's {num_classes} classes"
                                if c >= 0 else f"{where}: class {c} is negative",
                                "use class ids 0..num_classes-1 in the model's label order")
            if not all(math.isfinite(v) for v in (cx, cy, bw, bh)) or bw <= 0 or bh <= 0:
                raise DataError(f"{where}: box width/height must be positive finite fractions, got {bw} {bh}",
                                "write normalised cx cy w h")
            x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
            t = BOX_TOLERANCE
            if x1 < -t or y1 < -t or x2 > 1 + t or y2 > 1 + t:
                raise DataError(f"{where}: box [{x1:.3f},{y1:.3f},{x2:.3f},{y2:.3f}] lies outside the image "
                                f"(normalised coordinates must stay in 0..1)",
                                "YOLO labels are normalised to the image: check the label matches the image")
            x1, y1, x2, y2 = (min(max(v, 0.0), 1.0) for v in (x1, y1, x2, y2))
            boxes.append((x1 * w, y1 * h, x2 * w, y2 * h))
            classes.append(c)
        out.append(GroundTruth(np.array(boxes, np.float64).reshape(-1, 4), np.array(classes, np.int64)))
    return out


def read_coco(path: Path, images: Sequence[Path]) -> tuple[list[GroundTruth], list[str]]:
    """COCO JSON: bbox [x,y,w,h] in pixels; category ids mapped to 0..K-1 in sorted id order; names returned."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
        imgs = d["images"]
        anns = d.get("annotations", [])
        cats = d.get("categories", [])
        id_of = {}
        for im in imgs:
            id_of.setdefault(Path(str(im["file_name"])).name, []).append(im)
        cat_ids = sorted(int(c["id"]) for c in cats)
        names_by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in cats}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read COCO annotations {path} ({type(e).__name__}: {e})",
                        "give a COCO JSON file") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"{path} is not COCO JSON (missing or bad {e})",
                        "give a file with images, annotations and categories") from None
    index = {cid: i for i, cid in enumerate(cat_ids)}
    images = [Path(p) for p in images]
    given: dict[int, int] = {}   # coco image id → position in images
    sizes: dict[int, tuple[int, int]] = {}
    for n, p in enumerate(images):
        found = id_of.get(p.name)
        if not found:
            raise DataError(f"image {p.name} is not in {path}", "give only images the COCO file annotates")
        if len(found) > 1:
            raise DataError(f"{path} lists {p.name} {len(found)} times", "give each image once")
        im = found[0]
        try:
            given[int(im["id"])] = n
            sizes[int(im["id"])] = (int(im.get("height") or 0), int(im.get("width") or 0))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: image entry for {p.name} has no integer id", "fix the COCO file") from None
    known_ids = set()
    for im in imgs:
        try:
            known_ids.add(int(im["id"]))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: an image entry has no integer id", "fix the COCO file") from None
    boxes: list[list[tuple[float, ...]]] = [[] for _ in images]
    classes: list[list[int]] = [[] for _ in images]
    for k, a in enumerate(anns):
        try:
            iid, cid = int(a["image_id"]), int(a["category_id"])
            x, y, bw, bh = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}: annotation {k} lacks image_id, category_id or a 4-number bbox",
                            "fix the COCO file") from None
        if iid not in known_ids:
            raise DataError(f"{path}: annotation {k} is for image id {iid}, which the file does not list",
                            "fix the COCO file")
        if iid not in given:
            raise DataError(f"{path}: annotation {k} is for image id {iid}, which is not among the given images",
                            "give every image the COCO file annotates, or a COCO file for these images only")
        if cid not in index:
            raise DataError(f"{path}: annotation {k} has category {cid}, not in categories", "fix the COCO file")
        if a.get("iscrowd"):
            continue
        n = given[iid]
        h, w = sizes[iid]
        if not h or not w:
            h, w = _image_hw(images[n])
            sizes[iid] = (h, w)
        tx, ty = BOX_TOLERANCE * w, BOX_TOLERANCE * h
        if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0 or \
                x < -tx or y < -ty or x + bw > w + tx or y + bh > h + ty:
            raise DataError(f"{path}: annotation {k} bbox [{x:g},{y:g},{bw:g},{bh:g}] lies outside image "
                            f"{images[n].name} ({w}x{h}) or is empty",
                            "COCO bboxes are [x, y, width, height] in pixels of the image")
        boxes[n].append((max(x, 0.0), max(y, 0.0), min(x + bw, w), min(y + bh, h)))
        classes[n].append(index[cid])
    truths = [GroundTruth(np.array(b, np.float64).reshape(-1, 4), np.array(c, np.int64))
              for b, c in zip(boxes, classes)]
    return truths, [names_by_id[c] for c in cat_ids]


def read_masks(images: Sequence[Path], masks_dir: Path, num_classes: int) -> list[np.ndarray]:
    """PNG class-index masks named after each image's stem; same size as the image; values < num_classes or 255."""
    import cv2

    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise DataError(f"masks folder {masks_dir} does not exist", "give the folder of PNG class-index masks")
    out = []
    for img in (Path(p) for p in images):
        mp = masks_dir / (img.stem + ".png")
        if not mp.is_file():
            raise DataError(f"no mask {mp.name} in {masks_dir} for image {img.name}",
                            "give one PNG mask per image, named after the image's stem")
        m = cv2.imread(str(mp), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise DataError(f"cannot read mask {mp}", "write masks as PNG")
        if m.ndim == 3:
            if m.shape[2] >= 3 and np.array_equal(m[:, :, 0], m[:, :, 1]) and np.array_equal(m[:, :, 0], m[:, :, 2]):
                m = m[:, :, 0]
            else:
                raise DataError(f"mask {mp} is a colour image", "write single-channel class-index PNGs")
        if m.dtype != np.uint8:
            raise DataError(f"mask {mp} is {m.dtype}", "write 8-bit class-index PNGs")
        hw = _image_hw(img)
        if m.shape != hw:
            raise DataError(f"mask {mp} is {m.shape[1]}x{m.shape[0]}, its image {img.name} {hw[1]}x{hw[0]}",
                            "give masks at their image's size")
        bad = (m >= num_classes) & (m != UNKNOWN)
        if bad.any():
            raise DataError(f"mask {mp} holds class {int(m[bad].max())}, the model has {num_classes} classes",
                            f"use values 0..{num_classes - 1}, or 255 for pixels to ignore")
        out.append(m)
    return out


def load_annotations(path: Path, images: Sequence[Path], task: Task | str,
                     num_classes: int | None) -> tuple[list[GroundTruth] | list[np.ndarray], list[str] | None]:
    """Annotations for ``images`` by what ``path`` is: a ``.json`` → COCO; a folder of ``.txt`` → YOLO; a folder
    of ``.png`` → masks. Returns (truths, class names or None — COCO files name their classes)."""
    path = Path(path)
    task = Task(task)
    if not path.exists():
        raise DataError(f"annotations {path} do not exist", "give a COCO .json, a YOLO labels folder or a masks folder")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise DataError(f"annotations {path} are neither a COCO .json nor a folder",
                            "give a COCO .json, a YOLO labels folder or a masks folder")
        if task is not Task.DETECTION:
            raise DataError(f"COCO boxes in {path} do not fit task {task}", "COCO JSON annotates detection")
        return read_coco(path, images)
    has_txt = any(path.rglob("*.txt"))
    has_png = any(path.rglob("*.png"))
    if task is Task.SEGMENTATION:
        if not has_png:
            raise DataError(f"masks folder {path} holds no .png masks", "give PNG class-index masks named after the images")
        if num_classes is None:
            raise DataError("segmentation masks need the number of classes", "give num_classes")
        return read_masks(images, path, num_classes), None
    if task is Task.DETECTION:
        if not has_txt:
            raise DataError(f"labels folder {path} holds no YOLO .txt files" +
                            (" (it holds .png masks: a segmentation dataset?)" if has_png else ""),
                            "give YOLO labels ('class cx cy w h' per line) or a COCO .json")
        return read_yolo(images, path, num_classes), None
    raise DataError(f"task {task} has no annotation format", "annotations evaluate detection or segmentation")
