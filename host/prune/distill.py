"""Knowledge distillation, and the one fine-tuning loop that pruning shares.

The student learns from the teacher's soft targets (softmax at temperature T) and from the hard
labels: ``loss = alpha · T² · KL(teacher_T ‖ student_T) + (1 − alpha) · CE(labels, student)``.
The T² keeps the soft gradients' scale independent of T (Hinton et al., 2015). Models that end in
a softmax are handled through their log-probabilities, which are logits up to a constant.

The teacher's outputs are computed once, before training, and travel with the labels: training
then costs what fine-tuning the student alone costs, which matters on a laptop's CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import keras
from keras import ops

from keras_edge.device.contract import positive_float, positive_int
from keras_edge.device.contract import ModelError

from . import graph as g
from .base import check_distill_params


@dataclass(frozen=True)
class DistillConfig:
    """Temperature, soft-loss weight and training settings; validated on construction."""

    temperature: float = 4.0
    alpha: float = 0.5             # weight of the soft (teacher) loss; 1 − alpha goes to the labels
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    verbose: int | str = "auto"

    def __post_init__(self) -> None:
        check_distill_params(self.temperature, self.alpha)
        positive_int("epochs", self.epochs, "at least one epoch: distillation trains")
        positive_int("batch_size", self.batch_size, "a batch size such as 32")
        positive_float("learning_rate", self.learning_rate, "a learning rate such as 0.001")


@dataclass(frozen=True)
class DistillResult:
    """The trained student (plain Keras model) and, with validation data, the accuracies."""

    model: Any
    epochs: int
    temperature: float
    alpha: float
    teacher_accuracy: float | None = None
    student_accuracy_before: float | None = None
    student_accuracy_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}


def _as_logits(p: Any, probabilities: bool) -> Any:
    return ops.log(ops.clip(p, 1e-7, 1.0)) if probabilities else p


def distillation_loss(labels: Any, teacher_logits: Any, student_logits: Any, temperature: float, alpha: float) -> Any:
    """Per-example loss: alpha·T²·KL(soft teacher ‖ soft student) + (1 − alpha)·CE(labels, student)."""
    t = float(temperature)
    hard = keras.losses.sparse_categorical_crossentropy(labels, student_logits, from_logits=True)
    soft_teacher = ops.softmax(teacher_logits / t, axis=-1)
    kl = ops.sum(soft_teacher * (ops.log_softmax(teacher_logits / t, axis=-1)
                                 - ops.log_softmax(student_logits / t, axis=-1)), axis=-1)
    return alpha * t * t * kl + (1.0 - alpha) * hard


class _PackedDistillLoss(keras.losses.Loss):
    """``y_true`` is [label, teacher logits...] per row, so a plain ``fit`` can train the student."""

    def __init__(self, temperature: float, alpha: float, student_probabilities: bool):
        super().__init__(name="distillation")
        self.temperature, self.alpha, self.probs = temperature, alpha, student_probabilities

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(y_true[:, 0], "int32")
        return distillation_loss(labels, y_true[:, 1:], _as_logits(y_pred, self.probs), self.temperature, self.alpha)


def _packed_accuracy(y_true: Any, y_pred: Any) -> Any:
    return ops.cast(ops.equal(ops.cast(y_true[:, 0], "int32"), ops.cast(ops.argmax(y_pred, axis=-1), "int32")),
                    "float32")


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int = 32,
        learning_rate: float = 1e-3, teacher: keras.Model | None = None, temperature: float = 4.0,
        alpha: float = 0.5, callbacks: Sequence[Any] = (), verbose: int | str = "auto",
        validation: tuple[np.ndarray, np.ndarray] | None = None, patience: int = 2,
        recovered: float | None = None) -> Any:
    """Train ``model`` in place on labels, or distil ``teacher`` into it; returns the Keras History.

    With ``validation`` (x_val, y_val), ``epochs`` is a ceiling: the learning rate drops when validation
    accuracy stalls, training stops after ``patience`` epochs without improvement (keeping the best
    weights), and stops at once when validation accuracy reaches ``recovered``.
    """
    y = np.asarray(y)
    g.check_classifier(model, y)
    probs = g.output_is_probabilities(model, x)
    optimizer = keras.optimizers.Adam(learning_rate)
    if teacher is None:
        model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=not probs),
                      metrics=["accuracy"])
        pack = lambda xs, ys: ys.astype(np.int32)  # noqa: E731
    else:
        t_probs = g.output_is_probabilities(teacher, x)

        def pack(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
            t_logits = np.asarray(_as_logits(teacher.predict(xs, batch_size=max(batch_size, 64), verbose=0), t_probs),
                                  np.float32)
            return np.concatenate([ys.astype(np.float32)[:, None], t_logits], axis=1)

        model.compile(optimizer=optimizer, loss=_PackedDistillLoss(temperature, alpha, probs),
                      metrics=[keras.metrics.MeanMetricWrapper(_packed_accuracy, name="accuracy")])
    cbs = list(callbacks)
    val = None
    if validation is not None and len(validation[0]):
        val = (validation[0], pack(validation[0], np.asarray(validation[1])))
        cbs += [keras.callbacks.ReduceLROnPlateau(monitor="val_accuracy", mode="max", factor=0.3, patience=1,
                                                  min_lr=learning_rate / 100, verbose=0),
                keras.callbacks.EarlyStopping(monitor="val_accuracy", mode="max", patience=patience,
                                              restore_best_weights=True, verbose=0)]
        if recovered is not None:
            cbs.append(_StopWhenRecovered(recovered))
    return model.fit(x, pack(x, y), epochs=epochs, batch_size=batch_size, shuffle=True, callbacks=cbs,
                     validation_data=val, verbose=verbose)


class _StopWhenRecovered(keras.callbacks.Callback):
    """Stop as soon as validation accuracy is back at ``target``: more epochs would only cost time."""

    def __init__(self, target: float):
        super().__init__()
        self.target = target

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs and logs.get("val_accuracy", -1.0) >= self.target:
            self.model.stop_training = True


def _check_pair(teacher: keras.Model, student: keras.Model) -> None:
    for what in ("input_shape", "output_shape"):
        t, s = getattr(teacher, what), getattr(student, what)
        if tuple(t) != tuple(s):
            raise ModelError(f"teacher {what.replace('_', ' ')} {t} differs from the student's {s}",
                             "distillation needs a student with the teacher's input and output")


def distill(teacher: keras.Model, student: keras.Model, x: np.ndarray, y: np.ndarray, config: DistillConfig,
            x_val: np.ndarray | None = None, y_val: np.ndarray | None = None) -> DistillResult:
    """Train a copy of ``student`` on ``x``/``y`` with ``teacher``'s soft targets; the inputs stay untouched."""
    _check_pair(teacher, student)
    work = g.clone(student)
    fit(work, x, y, epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
        teacher=teacher, temperature=config.temperature, alpha=config.alpha, verbose=config.verbose)
    plain = g.clone(work)
    accs: dict[str, float] = {}
    if x_val is not None and y_val is not None and len(x_val):
        accs = {"teacher_accuracy": g.accuracy(teacher, x_val, y_val),
                "student_accuracy_before": g.accuracy(student, x_val, y_val),
                "student_accuracy_after": g.accuracy(plain, x_val, y_val)}
    return DistillResult(model=plain, epochs=config.epochs, temperature=config.temperature, alpha=config.alpha, **accs)
