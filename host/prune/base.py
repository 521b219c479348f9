"""What every pruning method shares: its configuration, its result, and the method names.

No Keras import here: the CLI builds its choices from these enums without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import gzip

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from keras_edge.device.contract import choice, in_range, positive_float, positive_int
from keras_edge.device.contract import ConfigError, DataError


class PruneMethod(StrEnum):
    MAGNITUDE = "magnitude"   # zero the smallest weights (smaller gzip, same dense compute)
    CHANNELS = "channels"     # remove whole filters (less compute)


class Schedule(StrEnum):
    CONSTANT = "constant"      # the final sparsity from the first step
    POLYNOMIAL = "polynomial"  # 0 → final along a cubic curve over the first 70% of the steps


class Criterion(StrEnum):
    """How channel pruning ranks filters (magnitude pruning always ranks single weights by |w|)."""

    L1 = "l1"
    L2 = "l2"
    BN = "bn"  # |gamma| of the BatchNormalization that follows; L1 where a channel group has none


def check_distill_params(temperature: float, alpha: float) -> None:
    positive_float("temperature", temperature, "a softening temperature such as 4")
    in_range("alpha", alpha, 0.0, 1.0, "the weight of the soft loss, such as 0.5", hi_open=False)


@dataclass(frozen=True)
class PruneConfig:
    """How to prune and fine-tune; validated on construction (errors name the field)."""

    method: PruneMethod
    sparsity: float
    epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 1e-3
    schedule: Schedule = Schedule.POLYNOMIAL
    criterion: Criterion = Criterion.L1
    channel_multiple: int = 8      # channels kept per group round to this (SIMD blocks); 1 = exact
    distill: bool = False          # fine-tune against the unpruned model as teacher
    temperature: float = 4.0
    alpha: float = 0.5
    verbose: int | str = "auto"    # Keras fit verbosity

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", choice("method", self.method, PruneMethod))
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity))
        positive_int("epochs", self.epochs, "0 to prune without fine-tuning, or a number of epochs", minimum=0)
        positive_int("batch_size", self.batch_size, "a batch size such as 32")
        positive_int("channel_multiple", self.channel_multiple, "1, 4, 8 or 16")
        positive_float("learning_rate", self.learning_rate, "a learning rate such as 0.001")
        object.__setattr__(self, "schedule", choice("schedule", self.schedule, Schedule))
        object.__setattr__(self, "criterion", choice("criterion", self.criterion, Criterion))
        check_distill_params(self.temperature, self.alpha)


@dataclass(frozen=True)
class LayerReport:
    """What pruning did to one layer: channels for channel pruning, weights for magnitude pruning."""

    name: str
    class_name: str
    unit: str                      # "channels" or "weights"
    before: int
    after: int                     # channels kept, or weights left non-zero
    kept: tuple[int, ...] = ()     # indices of the surviving output channels (channel pruning)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.after / self.before if self.before else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "class": self.class_name, "unit": self.unit, "before": self.before,
                "after": self.after, "sparsity": round(self.sparsity, 6)}


@dataclass(frozen=True)
class SkippedLayer:
    """A layer left unpruned, and why."""

    name: str
    class_name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "class": self.class_name, "reason": self.reason}


@dataclass(frozen=True)
class PruneResult:
    """A pruned, plain (uncompiled, wrapper-free) Keras model and what was done to it."""

    model: Any
    method: str
    sparsity: float                # requested
    achieved: float                # weights (magnitude) or channels (channels) removed, over the prunable ones
    layers: tuple[LayerReport, ...]
    skipped: tuple[SkippedLayer, ...]
    params_before: int
    params_after: int
    nonzero_before: int
    nonzero_after: int
    flops_before: int | None      # None when the input size is not fixed
    flops_after: int | None
    epochs: int
    accuracy_before: float | None = None   # on validation data, when given
    accuracy_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, JSON-ready."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("model", "layers", "skipped")}
        d["layers"] = [layer.to_dict() for layer in self.layers]
        d["skipped"] = [s.to_dict() for s in self.skipped]
        return d


@dataclass(frozen=True)
class PruneSpec:
    """One pruned variant for convert: a method and the fraction to remove (None: channel pruning searches
    for the largest fraction within the accuracy budget)."""

    method: PruneMethod
    sparsity: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", choice("prune.method", self.method, PruneMethod))
        if self.sparsity is None:
            if self.method is not PruneMethod.CHANNELS:
                raise ConfigError("prune.sparsity", f"is needed for {self.method} pruning (only channel pruning searches)",
                                  "give the fraction to remove, such as magnitude:0.8")
            return
        object.__setattr__(self, "sparsity", check_sparsity(self.sparsity, "prune.sparsity"))

    def __str__(self) -> str:
        return f"{self.method}:{self.sparsity}" if self.sparsity is not None else f"{self.method} (budgeted search)"


def check_sparsity(value: float, field: str = "sparsity") -> float:
    return in_range(field, value, 0.0, 1.0, "the fraction to remove, such as 0.5", lo_open=True)


def no_labels_error() -> DataError:
    return ConfigError("data", "is needed: fine-tuning needs labeled data and none was given",
                       "give labeled images (one subfolder per class), or epochs 0 to prune without fine-tuning")


def gzip_size(data: bytes) -> int:
    """Size of ``data`` after gzip -9: what unstructured sparsity buys on disk and over the wire."""
    return len(gzip.compress(data, compresslevel=9, mtime=0))
