"""The layer graph of a Keras 3 model, and the counts that pruning reports (parameters, FLOPs).

Only pruning code imports this module, and only inside its functions, so it may import Keras.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

import keras

from keras_edge.device.contract import ModelError


def graph_of(model: keras.Model) -> Any:
    """The Functional graph behind a Sequential or functional model; subclassed models have none."""
    if isinstance(model, keras.Sequential):
        if model._functional is None:  # noqa: SLF001 - Keras keeps a Sequential's graph here
            raise ModelError(f"Sequential model {model.name!r} has no known input shape",
                             "give its first layer an input shape (keras.Input) and save it again")
        return model._functional  # noqa: SLF001
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth"):
        return model
    raise ModelError(f"model {getattr(model, 'name', model)!r} is a subclassed keras.Model without a layer graph",
                     "pruning needs a Sequential or functional model")


def nodes(model: keras.Model) -> Iterator[Any]:
    """The graph's call nodes in topological order (inputs first)."""
    by_depth = graph_of(model)._nodes_by_depth  # noqa: SLF001 - no public graph walk in Keras 3
    for depth in sorted(by_depth, reverse=True):
        yield from by_depth[depth]


def clone(model: keras.Model) -> keras.Model:
    """An uncompiled copy with the same weights: the plain model that pruning hands back."""
    graph_of(model)  # a clear error for subclassed models
    # a config round trip, not keras.models.clone_model, which would carry the compile state over
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


class _UnknownSize(Exception):
    pass


def _positions(shape: tuple) -> int:
    """Spatial positions of a channels-last tensor (everything between batch and channels)."""
    if any(d is None for d in shape[1:-1]):
        raise _UnknownSize
    return int(np.prod([d for d in shape[1:-1]], dtype=np.int64)) if len(shape) > 2 else 1


def _layer_macs(layer: Any, node: Any) -> int:
    out_shape = tuple(node.outputs[0].shape)
    in_shape = tuple(node.input_tensors[0].shape) if node.input_tensors else ()
    if isinstance(layer, keras.Model):
        inner = count_flops(layer)
        if inner is None:
            raise _UnknownSize
        return inner // 2
    if isinstance(layer, (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)):
        return _positions(in_shape) * int(np.prod(layer.kernel.shape))
    if isinstance(layer, (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)):
        kernels = np.prod(layer.depthwise_kernel.shape) + np.prod(layer.pointwise_kernel.shape)
        return _positions(out_shape) * int(kernels)
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D,
                          keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
        # the kernel already holds kh·kw·cin/groups·cout (or kh·kw·cin·multiplier)
        return _positions(out_shape) * int(np.prod(layer.kernel.shape))
    return 0


def count_flops(model: keras.Model) -> int | None:
    """FLOPs of one inference: 2 × the multiply-adds of convolution and dense layers (batch 1).

    None when the model's input size is not fixed (the count depends on it).
    """
    total = 0
    try:
        for node in nodes(model):
            if node.operation is not None and not node.is_input:
                total += _layer_macs(node.operation, node)
    except _UnknownSize:
        return None
    return 2 * total


def count_params(model: keras.Model) -> int:
    return int(model.count_params())


def count_nonzero(model: keras.Model) -> int:
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


def output_is_probabilities(model: keras.Model, x: np.ndarray) -> bool:
    """Whether the model ends in a softmax: losses then take probabilities instead of logits."""
    p = np.asarray(model.predict(x[:64], verbose=0), dtype=np.float64)
    return bool(p.min() >= 0.0 and p.max() <= 1.0 and np.allclose(p.sum(axis=-1), 1.0, atol=1e-3))


def check_classifier(model: keras.Model, y: np.ndarray) -> int:
    """The number of classes the model outputs; a clear error when ``y`` does not fit it."""
    shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else ()
    if len(shape) != 2 or not shape[1] or shape[1] < 2:
        raise ModelError(f"model output shape {model.output_shape} is not a classifier's (batch, classes)",
                         "fine-tuning needs a model with one output of two or more classes")
    n = int(shape[1])
    if y.size and (int(y.min()) < 0 or int(y.max()) >= n):
        raise ModelError(f"labels run from {int(y.min())} to {int(y.max())} but the model has {n} outputs",
                         "give data with one class per model output")
    return n


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray, batch_size: int = 64) -> float:
    """Top-1 accuracy of a Keras model on labeled arrays."""
    pred = np.argmax(model.predict(x, batch_size=batch_size, verbose=0), axis=-1)
    return float(np.mean(pred == y))
