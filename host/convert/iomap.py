"""Which converted tensor is which Keras input and output, by name (never by position).

The TFLite converter orders a model's inputs by name (``serving_default_features:0`` before
``serving_default_image:0``) and may reorder its outputs, naming them ``StatefulPartitionedCall:1``…
Its ``serving_default`` signature keeps the Keras input names and names outputs ``output_<i>`` in
Keras order (or by the Keras output names); the map is read from there. A file without a usable
signature falls back to the outputs' shapes and, among outputs of one shape, to their values on
the evaluation set (:func:`match_outputs`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

_OUTPUT_N = re.compile(r"output_(\d+)")


def _signature(path: Path) -> dict | None:
    from ai_edge_litert.interpreter import Interpreter

    try:
        sigs = Interpreter(model_path=str(path))._get_full_signature_list()  # noqa: SLF001 - has the tensor indices
    except Exception:  # noqa: BLE001 - no signature to read is the fallback's case, not an error
        return None
    if not sigs:
        return None
    return sigs.get("serving_default") or next(iter(sigs.values()))


def io_order(path: Path, file_inputs: Sequence, file_outputs: Sequence, input_names: Sequence[str],
             output_names: Sequence[str]) -> tuple[list[int] | None, list[int] | None]:
    """(for each file input, its Keras input index; for each file output, its Keras output index), each None
    when the signature cannot say. ``file_inputs``/``file_outputs`` are the engine's specs (with tensor
    indices in their names' order as the interpreter lists them)."""
    if len(input_names) <= 1 and len(output_names) <= 1:
        return [0] * len(file_inputs), [0] * len(file_outputs)
    sig = _signature(path)
    if sig is None:
        return None, None
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    in_idx = [d["index"] for d in it.get_input_details()]
    out_idx = [d["index"] for d in it.get_output_details()]
    ins = _order(sig.get("inputs", {}), in_idx, list(input_names), None)
    outs = _order(sig.get("outputs", {}), out_idx, list(output_names), _OUTPUT_N)
    return ins, outs


def _order(named: dict[str, int], tensor_index: list[int], keras_names: list[str], numbered) -> list[int] | None:
    by_tensor = {t: k for k, t in named.items()}
    order = []
    for t in tensor_index:
        key = by_tensor.get(t)
        if key is None:
            return None
        if key in keras_names:
            order.append(keras_names.index(key))
        elif numbered is not None and numbered.fullmatch(key) and int(numbered.fullmatch(key).group(1)) < len(keras_names):
            order.append(int(numbered.fullmatch(key).group(1)))
        else:
            return None
    return order if sorted(order) == list(range(len(keras_names))) else None


def match_outputs(file_out: Sequence[np.ndarray], keras_out: Sequence[np.ndarray]) -> list[int] | None:
    """For each file output, the Keras output it is: by shape, and among outputs of one shape by the
    smallest difference on the same samples (greedy, most certain pair first). None when shapes differ."""
    if len(file_out) != len(keras_out):
        return None
    pairs = []
    for i, f in enumerate(file_out):
        for j, k in enumerate(keras_out):
            if f.shape == k.shape:
                err = float(np.mean(np.abs(f.astype(np.float64) - k.astype(np.float64))))
                pairs.append((err, i, j))
    order: dict[int, int] = {}
    for err, i, j in sorted(pairs):
        if i not in order and j not in order.values():
            order[i] = j
    if len(order) != len(file_out):
        return None
    return [order[i] for i in range(len(file_out))]


def match_inputs(file_inputs: Sequence, keras_shapes: Sequence[tuple[int, ...]]) -> list[int] | None:
    """For each file input, the Keras input of its shape, when every shape is unique (the fallback without a signature)."""
    order = []
    for t in file_inputs:
        same = [j for j, s in enumerate(keras_shapes) if tuple(s) == tuple(t.shape[1:])]
        if len(same) != 1:
            return None
        order.append(same[0])
    return order if sorted(order) == list(range(len(keras_shapes))) else None
