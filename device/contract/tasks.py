"""What a model's outputs mean: the postprocessing spec, written at convert time and read on the board.

Same parity rule as preprocessing: the spec lives in ``manifest.json`` (key ``"postprocess"``), and one
implementation (:mod:`.postprocess`) turns raw output tensors into task-shaped results for the host's
validation and for the board's ``run`` alike. A bare ``.tflite`` gets a spec inferred from its outputs
(:func:`.postprocess.infer_postprocess`), with the assumption printed.

Coordinates: every box is ``(x1, y1, x2, y2)`` in pixels of the *original* image once mapped back through
the preprocessing (letterbox / crop / stretch); heads state the units their raw outputs use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .errors import BundleError


class Task(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"
    SEGMENTATION = "segmentation"
    EMBEDDING = "embedding"
    REGRESSION = "regression"
    OTHER = "other"            # raw outputs, reported by name and shape


class ScoreKind(StrEnum):
    PROBABILITIES = "probabilities"   # already in [0, 1] (sigmoid/softmax inside the model)
    LOGITS = "logits"                 # sigmoid applied by the postprocessor (softmax for SSD with background)


class BoxUnits(StrEnum):
    NORMALIZED = "normalized"   # fractions of the model input's width/height
    PIXELS = "pixels"           # pixels of the model input


@dataclass(frozen=True)
class PostprocessSpec:
    """How raw outputs become a task's results. ``outputs`` maps a role to an output index.

    The index is into the manifest's ``outputs`` (the Keras model's order); the converter may order a model
    file's outputs otherwise, so users map it with :func:`.postprocess.align_outputs` (the runner does).

    Roles: classification ``scores``; detection: the head's own (``keras_edge.device.outputs.heads``,
    e.g. yolo ``predictions``); segmentation ``mask``
    ((1,H,W,C) class scores, or (1,H,W,1) / (1,H,W) one foreground probability); embedding ``embedding``;
    regression / other: every output, by name.
    """

    task: Task
    outputs: dict[str, int] = field(default_factory=dict)
    num_classes: int | None = None
    # detection
    head: str | None = None             # a detection head's name (keras_edge.device.outputs.heads.HEADS)
    scores: ScoreKind = ScoreKind.PROBABILITIES
    box_units: BoxUnits = BoxUnits.NORMALIZED
    objectness: bool = False            # YOLO: a 5th column multiplies the class scores
    anchors: str | None = None          # SSD: bundle-relative .npy (A,4) [cy,cx,h,w] normalised
    variances: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2)
    background: int | None = None       # SSD/segmentation: the background class index, if any
    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 100
    class_agnostic: bool = False        # NMS across classes instead of per class
    # segmentation
    threshold: float = 0.5              # a single-channel mask: foreground above this probability
    # embedding
    references: str | None = None       # bundle-relative .npz: name → reference embedding (cosine similarity)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", Task(self.task))
        if self.head is not None and (not isinstance(self.head, str) or not self.head.isidentifier()):
            raise BundleError(f"the postprocess spec's head {self.head!r} is not a head name", "reconvert the bundle")
        object.__setattr__(self, "scores", ScoreKind(self.scores))
        object.__setattr__(self, "box_units", BoxUnits(self.box_units))
        object.__setattr__(self, "variances", tuple(float(v) for v in self.variances))
        object.__setattr__(self, "outputs", {str(k): int(v) for k, v in self.outputs.items()})
        if self.task is Task.DETECTION:
            if self.head is None:
                raise BundleError("a detection postprocess spec has no head", "reconvert the bundle with --head")
        if not 0.0 <= self.score_threshold <= 1.0 or not 0.0 < self.iou_threshold <= 1.0:
            raise BundleError(f"postprocess thresholds out of range (score {self.score_threshold}, "
                              f"iou {self.iou_threshold})", "use fractions between 0 and 1")

    @property
    def files(self) -> tuple[str, ...]:
        """Bundle-relative files the spec needs (checked to stay inside the bundle)."""
        return tuple(f for f in (self.anchors, self.references) if f)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"task": str(self.task), "outputs": dict(self.outputs)}
        for k in ("num_classes", "anchors", "background", "references"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.task is Task.DETECTION:
            d.update(head=str(self.head), scores=str(self.scores), box_units=str(self.box_units),
                     objectness=self.objectness, variances=list(self.variances),
                     score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                     max_detections=self.max_detections, class_agnostic=self.class_agnostic)
        if self.task is Task.SEGMENTATION:
            d["threshold"] = self.threshold
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PostprocessSpec":
        try:
            return cls(task=Task(d["task"]), outputs=dict(d.get("outputs", {})),
                       num_classes=None if d.get("num_classes") is None else int(d["num_classes"]),
                       head=d.get("head"), scores=d.get("scores", "probabilities"),
                       box_units=d.get("box_units", "normalized"), objectness=bool(d.get("objectness", False)),
                       anchors=d.get("anchors"), variances=tuple(d.get("variances", (0.1, 0.1, 0.2, 0.2))),
                       background=None if d.get("background") is None else int(d["background"]),
                       score_threshold=float(d.get("score_threshold", 0.25)),
                       iou_threshold=float(d.get("iou_threshold", 0.45)),
                       max_detections=int(d.get("max_detections", 100)),
                       class_agnostic=bool(d.get("class_agnostic", False)),
                       threshold=float(d.get("threshold", 0.5)), references=d.get("references"))
        except (KeyError, TypeError, ValueError) as e:
            raise BundleError(f"manifest.json has a malformed postprocess spec ({type(e).__name__}: {e})",
                              "reconvert the bundle with `keras-edge convert`") from None

    @classmethod
    def classification(cls, num_classes: int | None = None) -> "PostprocessSpec":
        return cls(Task.CLASSIFICATION, {"scores": 0}, num_classes=num_classes)
