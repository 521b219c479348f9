"""What the user says a model's outputs mean: one validated type for ``convert``, ``run`` and the Python API.

``convert`` writes these into the manifest's postprocess spec; ``run`` takes them for a bare ``.tflite``
(a bundle's manifest already says what its outputs mean, so only the thresholds may override it). Errors
name the field (``head``, ``anchors``, ...); the CLI turns a field into its flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..contract.checks import positive_int
from ..contract.errors import ConfigError
from ..contract.tasks import BoxUnits, ScoreKind, Task
from .heads import HEADS

AUTO = "auto"
TASK_CHOICES = (AUTO, *(t.value for t in Task if t is not Task.OTHER))
# the fields that describe the outputs (the rest are thresholds, which a bundle's spec lets you override)
DESCRIBING = ("task", "head", "anchors", "references", "box_units", "scores", "objectness")


@dataclass(frozen=True)
class TaskOptions:
    """Task, detection head and its settings, thresholds; None means "not given" (the bundle's or a default)."""

    task: str | None = None               # auto | classification | detection | segmentation | embedding | regression
    head: str | None = None               # detection: a key of HEADS (yolo | ssd | tflite_postprocess)
    anchors: Path | None = None           # ssd: (A, 4) [cy,cx,h,w] normalised .npy
    references: Path | None = None        # embedding: .npz name → reference embedding (cosine matches)
    box_units: str | None = None          # normalized | pixels (of the model input)
    scores: str | None = None             # probabilities | logits
    objectness: bool = False              # yolo: a 5th column multiplies the class scores
    score_threshold: float | None = None
    iou_threshold: float | None = None
    max_detections: int | None = None

    def __post_init__(self) -> None:
        for name in ("anchors", "references"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        _choice("task", self.task, TASK_CHOICES)
        _choice("head", self.head, tuple(HEADS))
        _choice("box_units", self.box_units, tuple(BoxUnits))
        _choice("scores", self.scores, tuple(ScoreKind))
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise ConfigError("score_threshold", f"is {self.score_threshold:g}, not between 0 and 1",
                              "give a score fraction such as 0.25")
        if self.iou_threshold is not None and not 0.0 < self.iou_threshold <= 1.0:
            raise ConfigError("iou_threshold", f"is {self.iou_threshold:g}, not above 0 and at most 1",
                              "give an overlap fraction such as 0.45")
        if self.max_detections is not None:
            positive_int("max_detections", self.max_detections, "1 or more boxes per input")
        head = HEADS.get(self.head or "")
        if self.head is not None and self.task not in (None, AUTO, Task.DETECTION.value):
            raise ConfigError("head", f"describes a detection head, but the task is {self.task}",
                              "pass task detection, or leave the head out")
        for name in ("box_units", "objectness"):
            if getattr(self, name) not in (None, False) and not self.detection:
                raise ConfigError(name, "applies to task detection only", "add task detection, or leave it out")
        if self.anchors is not None:
            if head is None or not head.needs_anchors:
                raise ConfigError("anchors", f"are for a head with anchors ({', '.join(h for h, c in HEADS.items() if c.needs_anchors)})",
                                  "pass that head, or leave the anchors out")
            _file("anchors", self.anchors, ".npy", "give an (A, 4) [cy,cx,h,w] array saved with numpy.save")
        if self.objectness and (head is None or not head.objectness):
            raise ConfigError("objectness", f"applies to a head with an objectness column "
                              f"({', '.join(h for h, c in HEADS.items() if c.objectness)})", "leave it out")
        if self.references is not None:
            if self.task != Task.EMBEDDING.value:
                raise ConfigError("references", "are reference embeddings, for task embedding",
                                  "add task embedding, or leave them out")
            _file("references", self.references, ".npz", "give the reference embeddings as numpy.savez(FILE, name=vector, ...)")

    def check_complete(self, default_head: str | None = None) -> None:
        """What describing a model's outputs from scratch needs (convert, or run on a bare .tflite; a bundle's
        manifest already has it): a head for detection (``default_head`` if none is given), and the anchors a
        head decodes against."""
        head = HEADS.get(self.head or default_head or "")
        if self.task == Task.DETECTION.value and head is None:
            raise ConfigError("head", "is needed with task detection", f"give one of: {', '.join(HEADS)}")
        if head is not None and head.needs_anchors and self.anchors is None:
            raise ConfigError("anchors", f"are needed by the {head.name} head",
                              "give the anchors the model was trained with: an (A, 4) [cy,cx,h,w] .npy")

    @property
    def detection(self) -> bool:
        """Detection asked for, by the task or (under auto) by naming a head."""
        return self.task == Task.DETECTION.value or (self.task in (None, AUTO) and self.head is not None)

    @property
    def describing(self) -> list[str]:
        """The fields given that describe the outputs (a bundle's manifest already says these)."""
        return [f for f in DESCRIBING if getattr(self, f) not in (None, False)]


def _choice(field_: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise ConfigError(field_, f"is {value!r}", f"choose from: {', '.join(choices)}")


def _file(field_: str, path: Path, suffix: str, fix: str) -> None:
    if not path.is_file():
        raise ConfigError(field_, f"{path}: no such file", fix)
    if path.suffix.lower() != suffix:
        raise ConfigError(field_, f"{path} is not a {suffix} file", fix)
