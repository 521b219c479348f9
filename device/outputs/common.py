"""Small pieces every output room file shares: shape and fit errors, sigmoid/softmax."""

from __future__ import annotations

import numpy as np

from ..contract.bundle import TensorSpec
from ..contract.errors import ModelError
from ..contract.tasks import Task


def fit_error(task: Task, what: str, fix: str = "check the model's outputs and --task/--head") -> ModelError:
    return ModelError(f"the model's outputs do not fit task {task}: {what}", fix)


def shape(t: TensorSpec) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
