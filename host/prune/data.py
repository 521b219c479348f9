"""Labeled training data for pruning and distillation, preprocessed exactly as convert will do it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from keras_edge.device.contract import in_range
from keras_edge.device.contract import DataError
from keras_edge.device.inputs import PreprocessSpec

from ..model_io import LoadedModel
from ..preprocessing import PreprocessOptions, input_shape, resolve_spec


@dataclass(frozen=True)
class TrainingData:
    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    spec: PreprocessSpec
    class_names: tuple[str, ...]


def load_training_data(loaded: LoadedModel, data_dir: str | os.PathLike, options: PreprocessOptions = PreprocessOptions(),
                       val_split: float = 0.1, seed: int = 0,
                       progress: Callable[[int, int], None] | None = None) -> TrainingData:
    """Images under ``data_dir/<class>/`` → a seeded train/validation split, preprocessed by the same
    spec convert resolves for this model (:func:`keras_edge.host.preprocessing.resolve_spec`)."""
    from keras_edge.calibration.dataset import load_labeled

    in_range("val_split", val_split, 0.0, 1.0, "a fraction such as 0.1")
    spec = resolve_spec(loaded, input_shape(loaded, options), options)
    data = load_labeled(data_dir, spec, seed=seed, progress=progress)
    outputs = loaded.outputs[0].shape[-1]
    if data.class_names is None or len(data.class_names) != outputs:
        found = len(data.class_names or ())
        raise DataError(f"{data_dir} has {found} class subfolder(s) but the model has {outputs} outputs",
                        "give one subfolder per model output; sorted names map to outputs 0, 1, ...")
    order = np.random.default_rng(seed).permutation(len(data.y))
    n_val = int(len(order) * val_split)
    val, train = order[:n_val], order[n_val:]
    return TrainingData(data.x[train], data.y[train], data.x[val], data.y[val], spec, tuple(data.class_names))
