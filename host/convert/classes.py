"""Class names are checked, never assumed: which class folder is which model output.

With ``labels`` (one name per output, in the model's order) folders map to outputs by name
(``calibration.dataset.scan_folder``). Without it folders are taken in sorted order, and this module
checks that order against the Keras model's own predictions before any accuracy is scored with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keras_edge.device.contract.errors import ConfigError

# A permutation of the folders must beat sorted order by this many points of agreement with Keras, and by
# SIGMAS standard errors of the difference, before convert calls the sorted order wrong: a weak or
# near-chance model has permutations that win by a little through noise alone.
MIN_GAIN = 0.10
SIGMAS = 3.0


def read_labels(path: Path | None) -> tuple[str, ...] | None:
    """The class names of a labels file, in output order (blank lines skipped); names must be unique."""
    if path is None:
        return None
    names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigError("labels", f"{path} names the class {name!r} twice",
                              "give each class name once, on the line of its output position")
        seen.add(name)
    return tuple(names)


def best_order(y: np.ndarray, predicted: np.ndarray, classes: int) -> tuple[np.ndarray, float, float, int]:
    """(folder index → output index that agrees best with the predictions, its agreement, sorted order's, how many
    folders it moves to an output that most of their images are predicted as)."""
    from scipy.optimize import linear_sum_assignment

    k = max(classes, int(y.max()) + 1, int(predicted.max()) + 1)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (y, predicted), 1)
    rows, cols = linear_sum_assignment(-counts)
    mapping = np.empty(k, np.int64)
    mapping[rows] = cols
    n = max(len(y), 1)
    sizes = counts.sum(axis=1)
    moved = sum(1 for f in range(k) if mapping[f] != f and sizes[f] and counts[f, mapping[f]] >= 0.5 * sizes[f])
    return mapping, float(counts[rows, cols].sum() / n), float(np.trace(counts) / n), moved


def check_folder_order(y: np.ndarray | None, keras_top1: np.ndarray, class_names: tuple[str, ...] | None,
                       labels_given: bool) -> None:
    """Stop when a permutation of the (sorted) class folders matches Keras's predictions far better than
    sorted order does: the folders are not in the model's output order, and every accuracy would be wrong."""
    if labels_given or y is None or not class_names or len(y) == 0:
        return
    mapping, best, plain, moved = best_order(y, keras_top1, len(class_names))
    n = len(y)
    se = np.sqrt(max(best * (1 - best) + plain * (1 - plain), 1.0 / n) / n)
    # a permutation moves at least two folders; a model that answers one class for everything "matches" the
    # largest folder best, which says nothing about the order, so moved folders must mostly agree with Keras
    if best - plain < max(MIN_GAIN, SIGMAS * se) or moved < 2:
        return
    order = [""] * len(class_names)
    for folder, output in enumerate(mapping[:len(class_names)]):
        if output < len(order):
            order[output] = class_names[folder]
    shown = ", ".join(name or "?" for name in order)
    raise ConfigError("labels", f"is needed: the class folders in sorted order match the Keras model's predictions "
                      f"on {plain:.1%} of {n} evaluation images, but in the order {shown} on {best:.1%}, so they "
                      "are not in the model's output order",
                      "give a labels file with one class name per line in the model's output order")
