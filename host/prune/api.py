"""Pruning's public face: the method registry and one call that prunes, fine-tunes and measures.

Keras is imported inside the methods: the CLI takes its choices from the registry here and
`keras-edge prune --help` must not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from keras_edge.device.contract import DataError, ModelError

from .base import (Criterion, LayerReport, PruneConfig, PruneMethod, PruneResult, PruneSpec, Schedule,  # noqa: F401
                   SkippedLayer, check_distill_params, gzip_size, no_labels_error)


def _magnitude(model: Any, x: np.ndarray | None, y: np.ndarray | None, config: PruneConfig) -> PruneResult:
    from .magnitude import magnitude_prune

    return magnitude_prune(model, x, y, config)


def _channels(model: Any, x: np.ndarray | None, y: np.ndarray | None, config: PruneConfig) -> PruneResult:
    from .channels import channel_prune

    return channel_prune(model, x, y, config)


# name → function(model, x, y, PruneConfig) -> PruneResult; the CLI's --method choices are its keys
PRUNE_METHODS: dict[str, Callable[..., PruneResult]] = {
    PruneMethod.MAGNITUDE: _magnitude,
    PruneMethod.CHANNELS: _channels,
}

def _check_data(model: Any, x: np.ndarray | None, y: np.ndarray | None, epochs: int) -> None:
    if epochs > 0 and (x is None or y is None):
        raise no_labels_error()
    if x is None:
        return
    if y is None or len(x) != len(y) or len(x) == 0:
        raise DataError(f"{len(x)} inputs with {0 if y is None else len(y)} labels",
                        "give one integer label per input")
    want = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
    if want is None:
        raise ModelError(f"model {model.name!r} has several inputs", "pruning supports single-input image models")
    if len(want) != x.ndim - 1 or any(w is not None and w != d for w, d in zip(want, x.shape[1:])):
        raise DataError(f"inputs of shape {tuple(x.shape[1:])} do not fit the model's input {want}",
                        "preprocess the data to the model's input size")


def prune_with(model: Any, config: PruneConfig, x: np.ndarray | None = None, y: np.ndarray | None = None,
               x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> PruneResult:
    """Prune ``model`` as ``config`` says; with ``x_val``/``y_val`` the result carries both accuracies."""
    _check_data(model, x, y, config.epochs)
    if x is not None:
        from .graph import check_classifier

        check_classifier(model, np.asarray(y))
    result = PRUNE_METHODS[config.method](model, x, y, config)
    if x_val is not None and y_val is not None and len(x_val):
        from .graph import accuracy

        result = dataclasses.replace(result, accuracy_before=accuracy(model, x_val, y_val),
                                     accuracy_after=accuracy(result.model, x_val, y_val))
    return result


def prune_model(model: Any, method: str, sparsity: float, x: np.ndarray | None = None,
                y: np.ndarray | None = None, epochs: int = 2, *, x_val: np.ndarray | None = None,
                y_val: np.ndarray | None = None, **options: Any) -> PruneResult:
    """Prune ``model`` by ``method`` (a PRUNE_METHODS key) and fine-tune it on ``x``/``y`` for ``epochs``.

    ``options`` are the other PruneConfig fields (schedule, criterion, distill, batch_size, ...).
    The input model is left untouched. With ``x_val``/``y_val`` the result carries both accuracies.
    """
    config = PruneConfig(method=method, sparsity=sparsity, epochs=epochs, **options)
    return prune_with(model, config, x, y, x_val, y_val)
