"""Raw output tensors → task-shaped results: the one implementation of :class:`.tasks.PostprocessSpec`.

Used by the host's validation and by the board's ``run`` alike (numpy + OpenCV only). Coordinates: every
box a :class:`Detection` carries is ``(x1, y1, x2, y2)`` in pixels of the *original* image, mapped back
through the exact inverse of :func:`.preprocess.resize` (:func:`boxes_to_image`), or in pixels of the model
input when no image size is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..contract.files import check_arrays
from ..contract.bundle import TensorSpec
from ..contract.errors import BundleError, ModelError
from ..inputs.preprocess import PreprocessSpec, ResizeMode, dequantize
from ..contract.tasks import PostprocessSpec, ScoreKind, Task
from ..inputs.opencv import cv2 as _cv2
from .common import fit_error as _fit_error, shape as _shape, sigmoid as _sigmoid
from .heads import HEADS
from .heads.tflite_postprocess import find_roles

UNKNOWN = 255   # class-map value for pixels the model never saw (outside a centre crop) or ignored


# ----------------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Detection:
    box: tuple[float, float, float, float]   # x1, y1, x2, y2 in pixels of the original image
    score: float
    class_id: int
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4),
                             "class_id": int(self.class_id)}
        if self.label is not None:
            d["label"] = self.label
        return d


def _summary(a: np.ndarray, limit: int = 64) -> Any:
    """A JSON-able view of an array: its values when small, else its shape and a few statistics."""
    a = np.asarray(a)
    if a.size <= limit:
        return np.round(a.astype(np.float64), 6).tolist()
    f = a.astype(np.float64)
    return {"shape": list(a.shape), "dtype": str(a.dtype), "min": float(f.min()), "max": float(f.max()),
            "mean": float(f.mean())}


@dataclass
class TaskResult:
    task: Task
    detections: list[Detection] | None = None
    class_map: np.ndarray | None = None           # H×W uint8 at the original image size (255 = unknown)
    class_areas: dict[int, float] | None = None   # fraction of the image's pixels per class
    embedding: np.ndarray | None = None
    matches: list[tuple[str, float]] | None = None   # cosine similarity to references, best first
    named: dict[str, np.ndarray] | None = None       # regression / other: outputs by name
    top: list[tuple[int, float]] | None = None       # classification: (class, score), best first

    def to_dict(self, labels: Sequence[str] | None = None) -> dict[str, Any]:
        def name(c: int) -> str | None:
            return labels[c] if labels is not None and 0 <= c < len(labels) else None

        d: dict[str, Any] = {"task": str(self.task)}
        if self.top is not None:
            d["top"] = [{"class_id": int(c), "score": round(float(s), 6),
                         **({"label": name(c)} if name(c) is not None else {})} for c, s in self.top]
        if self.detections is not None:
            dets = []
            for det in self.detections:
                x = det.to_dict()
                if "label" not in x and name(det.class_id) is not None:
                    x["label"] = name(det.class_id)
                dets.append(x)
            d["detections"] = dets
        if self.class_map is not None:
            d["mask_hw"] = [int(self.class_map.shape[0]), int(self.class_map.shape[1])]
        if self.class_areas is not None:
            d["class_areas"] = [{"class_id": int(c), "fraction": round(float(f), 6),
                                 **({"label": name(c)} if name(c) is not None else {})}
                                for c, f in sorted(self.class_areas.items(), key=lambda kv: -kv[1])]
        if self.embedding is not None:
            d["embedding"] = {"dim": int(self.embedding.size),
                              "norm": round(float(np.linalg.norm(self.embedding)), 6),
                              "values": _summary(self.embedding, 256)}
        if self.matches is not None:
            d["matches"] = [{"name": n, "similarity": round(float(s), 6)} for n, s in self.matches]
        if self.named is not None:
            d["outputs"] = {k: _summary(v) for k, v in self.named.items()}
        return d


# -------------------------------------------------------------------------------------------- geometry

def _geometry(preprocess: PreprocessSpec | None, image_hw: tuple[int, int] | None):
    """(crop_y0, crop_x0, scale_y, scale_x, pad_y0, pad_x0, in_h, in_w) with
    ``input = (image - crop0) * scale + pad0``, the continuous form of :func:`.preprocess.resize`."""
    if preprocess is None or image_hw is None:
        raise ValueError("geometry needs a preprocessing spec and an image size")
    h, w = int(image_hw[0]), int(image_hw[1])
    th, tw = preprocess.height, preprocess.width
    if h <= 0 or w <= 0:
        raise ValueError(f"image size {h}x{w} is not positive")
    cy0 = cx0 = 0
    py0 = px0 = 0
    if preprocess.resize is ResizeMode.CROP:
        # the same arithmetic as preprocess.resize
        ch, cw = (h, round(h * tw / th)) if w * th > h * tw else (round(w * th / tw), w)
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        cy0, cx0 = (h - ch) // 2, (w - cw) // 2
        return cy0, cx0, th / ch, tw / cw, 0, 0, th, tw
    if preprocess.resize is ResizeMode.LETTERBOX:
        r = min(th / h, tw / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        py0, px0 = (th - nh) // 2, (tw - nw) // 2
        return 0, 0, nh / h, nw / w, py0, px0, th, tw
    return 0, 0, th / h, tw / w, 0, 0, th, tw


def boxes_to_image(boxes_xyxy: np.ndarray, preprocess: PreprocessSpec | None,
                   image_hw: tuple[int, int] | None, clip: bool = True) -> np.ndarray:
    """Boxes (N,4) x1,y1,x2,y2 in model-input pixels → pixels of the original image (clipped to it).

    The exact inverse of :func:`.preprocess.resize`'s geometry for stretch, centre crop and letterbox.
    Without ``preprocess`` or ``image_hw`` the boxes are returned as they are (model-input pixels).
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4).copy()
    if preprocess is None or image_hw is None:
        return b
    cy0, cx0, sy, sx, py0, px0, _, _ = _geometry(preprocess, image_hw)
    b[:, [0, 2]] = (b[:, [0, 2]] - px0) / sx + cx0
    b[:, [1, 3]] = (b[:, [1, 3]] - py0) / sy + cy0
    if clip:
        h, w = image_hw
        b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, w)
        b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, h)
    return b


def boxes_to_input(boxes_xyxy: np.ndarray, preprocess: PreprocessSpec | None,
                   image_hw: tuple[int, int] | None) -> np.ndarray:
    """Boxes (N,4) in pixels of the original image → model-input pixels (the inverse of :func:`boxes_to_image`).

    Not clipped: a box partly outside a centre crop keeps its outside part (negative or beyond the input).
    """
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4).copy()
    if preprocess is None or image_hw is None:
        return b
    cy0, cx0, sy, sx, py0, px0, _, _ = _geometry(preprocess, image_hw)
    b[:, [0, 2]] = (b[:, [0, 2]] - cx0) * sx + px0
    b[:, [1, 3]] = (b[:, [1, 3]] - cy0) * sy + py0
    return b


def mask_to_image(class_map: np.ndarray, preprocess: PreprocessSpec | None,
                  image_hw: tuple[int, int] | None) -> np.ndarray:
    """A class map (h,w) uint8 over the model input (any resolution) → (H,W) uint8 over the original image.

    Nearest neighbour, sampled at each image pixel's centre through the same geometry as the boxes: for
    ``crop`` the pixels outside the crop are 255 (unknown); for ``letterbox`` the padding is cut away.
    Without ``preprocess`` or ``image_hw`` the map is resized to the model input (or returned as it is).
    """
    cm = np.asarray(class_map)
    if cm.ndim != 2:
        raise ValueError(f"a class map is 2-D, got shape {cm.shape}")
    mh, mw = cm.shape
    if preprocess is None:
        return cm.astype(np.uint8, copy=False)
    if image_hw is None:
        image_hw = (preprocess.height, preprocess.width)
        geo = (0, 0, 1.0, 1.0, 0, 0, preprocess.height, preprocess.width)
    else:
        geo = _geometry(preprocess, image_hw)
    cy0, cx0, sy, sx, py0, px0, th, tw = geo
    h, w = int(image_hw[0]), int(image_hw[1])
    yin = ((np.arange(h) + 0.5) - cy0) * sy + py0      # image pixel centres in input coordinates
    xin = ((np.arange(w) + 0.5) - cx0) * sx + px0
    iy = np.floor(yin * mh / th).astype(np.int64)
    ix = np.floor(xin * mw / tw).astype(np.int64)
    vy = (yin >= 0) & (yin < th)
    vx = (xin >= 0) & (xin < tw)
    out = cm[np.clip(iy, 0, mh - 1)[:, None], np.clip(ix, 0, mw - 1)[None, :]].astype(np.uint8)
    out[~(vy[:, None] & vx[None, :])] = UNKNOWN
    return out


# ------------------------------------------------------------------------------------------------- NMS

def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou_threshold: float,
        max_detections: int, class_agnostic: bool = False) -> np.ndarray:
    """Indices kept by (class-aware) non-maximum suppression, best score first (cv2.dnn)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    cv2 = _cv2()
    b = np.asarray(boxes, np.float64)
    xywh = [(float(x1), float(y1), float(x2 - x1), float(y2 - y1)) for x1, y1, x2, y2 in b]
    sc = [float(s) for s in scores]
    if class_agnostic:
        keep = cv2.dnn.NMSBoxes(xywh, sc, 0.0, float(iou_threshold))
    else:
        keep = cv2.dnn.NMSBoxesBatched(xywh, sc, [int(c) for c in classes], 0.0, float(iou_threshold))
    keep = np.asarray(keep, np.int64).reshape(-1)
    keep = keep[np.argsort(-np.asarray(scores)[keep], kind="stable")]
    return keep[:max_detections]


# ------------------------------------------------------------------------------------------- inference

def _is_scalar_count(t: TensorSpec) -> bool:
    return tuple(t.shape) in ((1,), ())


def infer_postprocess(outputs: Sequence[TensorSpec]) -> tuple[PostprocessSpec, list[str]]:
    """A spec for a bare ``.tflite`` from its outputs alone, and the assumptions made (to be printed).

    Four outputs (1,N,4), (1,N), (1,N), (1,) → the ``TFLite_Detection_PostProcess`` head; one (1,C) output →
    classification; anything else → :attr:`Task.OTHER` (raw outputs by name).
    """
    notes: list[str] = []
    outs = list(outputs)
    found = find_roles(outs)
    if found is not None:
        roles, how = found
        spec = PostprocessSpec(Task.DETECTION, roles, head="tflite_postprocess")
        notes.append(f"assumed a detector ending in TFLite_Detection_PostProcess (outputs: boxes "
                     f"{outs[roles['boxes']].name!r}, classes {outs[roles['classes']].name!r}, scores "
                     f"{outs[roles['scores']].name!r}, count {outs[roles['count']].name!r}; {how}); boxes are "
                     f"[ymin,xmin,ymax,xmax] normalised to the model input, score threshold "
                     f"{spec.score_threshold}")
        return spec, notes
    if len(outs) == 1 and len(outs[0].shape) == 2 and outs[0].shape[0] in (1, -1) and outs[0].shape[1] > 1:
        notes.append(f"assumed a classifier: output {outs[0].name!r} {tuple(outs[0].shape)} holds class scores")
        return PostprocessSpec.classification(outs[0].shape[1]), notes
    shapes = ", ".join(f"{t.name} {tuple(t.shape)}" for t in outs)
    notes.append(f"outputs reported raw, by name ({shapes}); give --task to decode them")
    return PostprocessSpec(Task.OTHER), notes


# ------------------------------------------------------------------------------------------ output order

def _same_shape(a: TensorSpec, b: TensorSpec) -> bool:
    sa, sb = _shape(a), _shape(b)
    return len(sa) == len(sb) and all(x == y or x < 0 or y < 0 for x, y in zip(sa, sb))


def file_outputs(declared: Sequence[TensorSpec], actual: Sequence[TensorSpec], recorded: Sequence[int] = ()) -> list[int]:
    """For each declared (manifest) output, its index among the model file's outputs.

    ``recorded`` is the variant's ``output_order`` (file output i is manifest output recorded[i]), written at
    convert time from the file's signature; without it (older bundles) the outputs are matched by
    :func:`align_outputs`.
    """
    if recorded and len(recorded) == len(actual):
        order = [0] * len(recorded)
        for i, j in enumerate(recorded):
            order[j] = i
        return order
    return align_outputs(declared, actual)


def align_outputs(declared: Sequence[TensorSpec], actual: Sequence[TensorSpec]) -> list[int]:
    """For each declared output (the manifest's, in the Keras model's order), its index among the model file's
    outputs (the converter may reorder them): matched by name, else by position, else by shape.

    Two outputs of the same shape that the converter swapped and renamed cannot be told apart; they are taken
    in position order.
    """
    if len(declared) != len(actual):
        raise ModelError(f"the manifest declares {len(declared)} output(s), the model file has {len(actual)}",
                         "reconvert the bundle")
    order = [-1] * len(declared)
    used: set[int] = set()
    by_name = {t.name: j for j, t in enumerate(actual)}
    for i, t in enumerate(declared):
        j = by_name.get(t.name)
        if j is not None and _same_shape(t, actual[j]):
            order[i] = j
            used.add(j)
    for i, t in enumerate(declared):
        if order[i] < 0 and i not in used and _same_shape(t, actual[i]):
            order[i] = i
            used.add(i)
    for i, t in enumerate(declared):
        if order[i] < 0:
            j = next((j for j, a in enumerate(actual) if j not in used and _same_shape(t, a)), None)
            if j is None:
                raise ModelError(f"output {t.name!r} {_shape(t)} has no counterpart among the model file's outputs "
                                 f"({', '.join(f'{a.name} {_shape(a)}' for a in actual)})", "reconvert the bundle")
            order[i] = j
            used.add(j)
    return order


# ------------------------------------------------------------------------------------------ postprocessor

class Postprocessor:
    """Turns one inference's raw outputs into a :class:`TaskResult`. Built once, called per input."""

    def __init__(self, spec: PostprocessSpec, outputs: Sequence[TensorSpec], preprocess: PreprocessSpec | None,
                 bundle_dir: Path | None = None, labels: Sequence[str] | None = None):
        self.spec = spec
        self.outputs = list(outputs)
        self.preprocess = preprocess
        self.labels = list(labels) if labels is not None else None
        self.notes: list[str] = []
        self.roles = dict(spec.outputs)
        self.head = None                              # the detection head (outputs/heads), for task detection
        self.references: dict[str, np.ndarray] | None = None
        for role, idx in self.roles.items():
            if not 0 <= idx < len(self.outputs):
                raise _fit_error(spec.task, f"the spec's {role!r} is output {idx}, the model has "
                                            f"{len(self.outputs)} output(s)")
        {Task.CLASSIFICATION: self._check_classification, Task.DETECTION: self._check_detection,
         Task.SEGMENTATION: self._check_segmentation, Task.EMBEDDING: self._check_embedding,
         Task.REGRESSION: lambda d: None, Task.OTHER: lambda d: None}[spec.task](bundle_dir)

    # ---- validation
    def output(self, role: str) -> TensorSpec:
        return self.outputs[self.roles[role]]

    _out = output

    def describe(self) -> str:
        return ", ".join(f"{t.name} {_shape(t)}" for t in self.outputs)

    def _check_classification(self, bundle_dir: Path | None) -> None:
        t = self._out("scores") if "scores" in self.roles else self.outputs[0]
        self.roles.setdefault("scores", 0)
        s = _shape(t)
        if len(s) != 2 or s[1] < 1:
            raise _fit_error(Task.CLASSIFICATION, f"class scores are (1,C), output {t.name!r} is {s}")

    def _check_detection(self, bundle_dir: Path | None) -> None:
        head = HEADS.get(self.spec.head or "")
        if head is None:
            raise BundleError(f"the postprocess spec names detection head {self.spec.head!r}, which this keras-edge "
                              f"does not have (it has: {', '.join(HEADS)})",
                              "upgrade keras-edge here, or reconvert the bundle with one of those heads")
        missing = [r for r in head.roles if r not in self.roles]
        if missing:
            raise BundleError(f"the {head.name} head's spec names no output for {', '.join(missing)}", "reconvert the bundle")
        self.head = head(self, bundle_dir)

    def bundle_file(self, bundle_dir: Path | None, rel: str, what: str) -> Path:
        p = Path(rel)
        if not p.is_absolute():
            if bundle_dir is None:
                raise BundleError(f"the {what} file {rel!r} is relative and no bundle directory was given",
                                  "pass bundle_dir or an absolute path")
            p = Path(bundle_dir) / p
        if not p.exists():
            raise BundleError(f"the {what} file {p} is missing", f"give the {what} file (.npy/.npz) that exists")
        check_arrays(p, f"the {what} file {p}", BundleError)   # regular file, size from its headers
        return p

    def _check_segmentation(self, bundle_dir: Path | None) -> None:
        self.roles.setdefault("mask", 0)
        s = _shape(self._out("mask"))
        if len(s) not in (3, 4) or (len(s) == 4 and s[3] < 1):
            raise _fit_error(Task.SEGMENTATION, f"a mask is (1,H,W,C), (1,H,W,1) or (1,H,W); output "
                                                f"{self._out('mask').name!r} is {s}")

    def _check_embedding(self, bundle_dir: Path | None) -> None:
        self.roles.setdefault("embedding", 0)
        s = _shape(self._out("embedding"))
        if len(s) < 1 or (len(s) > 1 and s[0] not in (1, -1)):
            raise _fit_error(Task.EMBEDDING, f"an embedding is (1,D); output {self._out('embedding').name!r} is {s}")
        if self.spec.references:
            p = self.bundle_file(bundle_dir, self.spec.references, "references")
            try:
                with np.load(p, allow_pickle=False) as z:
                    refs = {k: np.asarray(z[k], np.float64).reshape(-1) for k in z.files}
            except (ValueError, OSError) as e:
                raise BundleError(f"the references file {p} cannot be read ({e})", "write it with numpy.savez") from None
            dim = int(np.prod([d for d in s[1:] if d > 0])) if len(s) > 1 else s[0]
            bad = [k for k, v in refs.items() if v.size != dim]
            if bad:
                raise _fit_error(Task.EMBEDDING, f"reference {bad[0]!r} has {refs[bad[0]].size} values, the "
                                                 f"embedding {dim}", "compute the references with this model")
            self.references = refs

    # ---- call
    def raw(self, raw: Sequence[np.ndarray], role: str) -> np.ndarray:
        """The output playing ``role``, dequantized."""
        t = self.output(role)
        return dequantize(np.asarray(raw[self.roles[role]]), t.scale, t.zero_point)

    def label(self, c: int) -> str | None:
        return self.labels[c] if self.labels is not None and 0 <= c < len(self.labels) else None

    def __call__(self, raw: list[np.ndarray], image_hw: tuple[int, int] | None) -> TaskResult:
        if len(raw) != len(self.outputs):
            raise _fit_error(self.spec.task, f"got {len(raw)} output tensors, the model declares {len(self.outputs)}")
        task = self.spec.task
        if task is Task.CLASSIFICATION:
            s = self.raw(raw, "scores").reshape(-1)
            order = np.argsort(-s, kind="stable")[:5]
            return TaskResult(task, top=[(int(i), float(s[i])) for i in order])
        if task is Task.DETECTION:
            return TaskResult(task, detections=self._detect(raw, image_hw))
        if task is Task.SEGMENTATION:
            return self._segment(raw, image_hw)
        if task is Task.EMBEDDING:
            e = self.raw(raw, "embedding").reshape(-1).astype(np.float32)
            matches = None
            if self.references is not None:
                en = e / max(float(np.linalg.norm(e)), 1e-12)
                sims = [(k, float(np.dot(en, v) / max(float(np.linalg.norm(v)), 1e-12)))
                        for k, v in self.references.items()]
                matches = sorted(sims, key=lambda kv: -kv[1])
            return TaskResult(task, embedding=e, matches=matches)
        named = {}
        for i, t in enumerate(self.outputs):
            a = dequantize(np.asarray(raw[i]), t.scale, t.zero_point)
            named[t.name] = a[0] if a.ndim > 1 and a.shape[0] == 1 else a
        return TaskResult(task, named=named)

    # ---- detection
    def _input_hw(self) -> tuple[int, int]:
        if self.preprocess is None:
            raise ModelError("box decoding needs the model's input size", "run the model through a bundle or an image input")
        return self.preprocess.height, self.preprocess.width

    def _finish(self, boxes_in: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                image_hw: tuple[int, int] | None, do_nms: bool) -> list[Detection]:
        spec = self.spec
        keep = scores >= spec.score_threshold
        boxes_in, scores, classes = boxes_in[keep], scores[keep], classes[keep]
        if do_nms:
            idx = nms(boxes_in, scores, classes, spec.iou_threshold, spec.max_detections, spec.class_agnostic)
        else:
            idx = np.argsort(-scores, kind="stable")[:spec.max_detections]
        boxes_in, scores, classes = boxes_in[idx], scores[idx], classes[idx]
        boxes = boxes_to_image(boxes_in, self.preprocess, image_hw) if image_hw is not None else boxes_in
        return [Detection(tuple(float(v) for v in b), float(s), int(c), self.label(int(c)))
                for b, s, c in zip(boxes, scores, classes)]

    def _detect(self, raw: Sequence[np.ndarray], image_hw: tuple[int, int] | None) -> list[Detection]:
        boxes, scores, classes = self.head.decode(raw, self._input_hw())
        return self._finish(boxes, scores, classes, image_hw, do_nms=self.head.nms)

    # ---- segmentation
    def _segment(self, raw: Sequence[np.ndarray], image_hw: tuple[int, int] | None) -> TaskResult:
        spec = self.spec
        m = self.raw(raw, "mask").astype(np.float32)
        m = m.reshape(m.shape[1:]) if m.ndim >= 3 and m.shape[0] == 1 else m
        if m.ndim == 3 and m.shape[-1] > 1:
            cm = m.argmax(-1).astype(np.uint8)
        else:
            m = m.reshape(m.shape[0], m.shape[1])
            if spec.scores is ScoreKind.LOGITS:
                m = _sigmoid(m)
            cm = (m > spec.threshold).astype(np.uint8)
        full = mask_to_image(cm, self.preprocess, image_hw)
        known = full[full != UNKNOWN]
        total = max(int(known.size), 1)
        counts = np.bincount(known.reshape(-1), minlength=1)
        areas = {int(c): float(n) / total for c, n in enumerate(counts) if n}
        return TaskResult(Task.SEGMENTATION, class_map=full, class_areas=areas)
