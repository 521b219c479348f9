"""How many samples a Keras forward pass may take at once: bounded by activation memory, not a fixed count.

A batch of 32 images through a 26M-parameter segmentation model at 224×224 holds several GB of activations;
the same batch through the digits CNN holds a few MB. The estimate sums every layer's output per sample
(an upper bound: eager execution frees intermediates as it goes) and divides a budget by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FORWARD_BUDGET = 1 << 30   # bytes of activations one forward batch may hold (by the upper-bound estimate)


def activation_bytes(model) -> int:
    """Bytes of all layer outputs of one sample (float32), nested models included; 0 when unknown."""
    total = 0
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer.layers:
            total += activation_bytes(layer)
            continue
        try:
            outs = layer.output
        except (AttributeError, ValueError):   # a layer used more than once has no single output
            continue
        for t in outs if isinstance(outs, (list, tuple)) else [outs]:
            shape = getattr(t, "shape", None)
            if shape is not None and len(shape) > 1:
                total += 4 * int(np.prod([d or 1 for d in shape[1:]]))
    return total


def batch_size(models: Any, cap: int = 64, budget: int = FORWARD_BUDGET, extra_per_sample: int = 0) -> int:
    """Samples per forward batch for ``models`` (one model or several run on the same batch), at most ``cap``;
    ``extra_per_sample`` adds bytes the caller keeps per sample (probed tensors, outputs)."""
    models = models if isinstance(models, (list, tuple)) else [models]
    per = sum(activation_bytes(m) for m in models) + extra_per_sample
    return int(max(1, min(cap, budget // max(per, 1))))
