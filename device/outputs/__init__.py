"""Outputs: raw tensors → a task's results (classification, detection through :mod:`.heads`, segmentation,
embeddings, raw), the task options a user gives, and the task metrics (mAP, mean IoU) the workstation scores
variants by — one implementation for host validation and the board's ``run``."""

from .heads import HEADS
from .metrics import GroundTruth, detection_map, load_annotations, mean_iou
from .postprocess import Detection, Postprocessor, TaskResult
from .task_options import TASK_CHOICES, TaskOptions

__all__ = ["HEADS", "TASK_CHOICES", "Detection", "GroundTruth", "Postprocessor", "TaskOptions", "TaskResult",
           "detection_map", "load_annotations", "mean_iou"]
