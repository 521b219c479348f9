"""Which variant a bundle runs by default: the fastest one within the accuracy budget."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Sequence

from keras_edge.device.contract import bundle as B

from ..tflite.fidelity import pp

NOISE = 0.05  # latency differences below this fraction do not decide the default


@dataclass(frozen=True)
class BoardTimes:
    """p50 latency per variant measured on a board by `keras-edge bench --on` (from the previous report)."""

    board: str
    measured: str
    latency_ms: dict[str, float]


class Basis(StrEnum):
    """What the default's speed comparison rests on, best first."""

    BOARD_MEASURED = "board-measured"      # bench --on on a board
    BOARD_PREDICTED = "board-predicted"    # convert --board: the board kind's cost table
    WORKSTATION = "workstation"            # this machine's own timing, the last resort


@dataclass(frozen=True)
class Choice:
    name: str
    reason: str
    basis: Basis


def board_times(report: Any, kind: str | None = None) -> BoardTimes | None:
    """The most recent board benchmark stored in ``report`` (a :class:`Report`, or None); with a board ``kind``
    (``convert --board``) only runs on boards of that kind count: another board's speed is not the target's."""
    if report is None:
        return None
    runs = [b for b in report.boards.values() if b.latencies()]
    if kind is not None:
        from keras_edge.device.profile.boards import load

        board = load().board(kind)
        runs = [b for b in runs if board.matches(b.board)]
    run = max(runs, key=lambda b: b.measured) if runs else None
    return BoardTimes(run.fingerprint, run.measured, run.latencies()) if run else None


def loss_of(metrics: dict[str, Any], keras_acc: float | None) -> float:
    """The task metric's drop for detection/segmentation (mAP@0.5:0.95 or mean IoU against Keras's, or 1 − fidelity
    without annotations); else accuracy drop against Keras when labels exist, disagreement with Keras for
    classifiers, and the relative RMS error of the outputs for anything else (:func:`relative_error`)."""
    if metrics.get("metric_drop") is not None:
        return float(metrics["metric_drop"])
    # a quantized input is measured through both rounding orders (evaluate.compare_bare): the worse one counts
    if keras_acc is not None and metrics.get("accuracy") is not None:
        return keras_acc - min(metrics["accuracy"], metrics.get("accuracy_bare", metrics["accuracy"]))
    if metrics.get("agreement") is not None:
        return 1.0 - min(metrics["agreement"], metrics.get("agreement_bare", metrics["agreement"]))
    return relative_error(metrics)


def relative_error(metrics: dict[str, Any]) -> float:
    """Regression, embeddings and other raw outputs: the worst output's relative RMS error against Keras
    (sqrt of the noise-to-signal ratio: 0.01 is SNR 40 dB); 0 when the outputs match exactly."""
    snr = metrics.get("snr_db")
    return float(10 ** (-snr / 20)) if snr is not None else 0.0


def loss_interval(metrics: dict[str, Any], keras_acc: float | None) -> tuple[float, float]:
    """95% interval of :func:`loss_of`: the paired accuracy-drop interval, else 1 − agreement's Wilson interval
    (of the worse input path, as :func:`loss_of`)."""
    bare = (metrics.get("accuracy_bare") is not None and keras_acc is not None
            and metrics["accuracy_bare"] < (metrics.get("accuracy") or 0.0)) or \
           (metrics.get("agreement_bare") is not None and metrics["agreement_bare"] < (metrics.get("agreement") or 0.0))
    sfx = "_bare" if bare else ""
    if keras_acc is not None and metrics.get("accuracy_drop_ci" + sfx):
        lo, hi = metrics["accuracy_drop_ci" + sfx]
        return float(lo), float(hi)
    if metrics.get("agreement_ci" + sfx):
        lo, hi = metrics["agreement_ci" + sfx]
        return 1.0 - float(hi), 1.0 - float(lo)
    loss = loss_of(metrics, keras_acc)
    return loss, loss


def verdict_of(metrics: dict[str, Any], keras_acc: float | None, budget: float):
    """Whether the variant's loss fits ``budget``, misses it, or the evaluation set cannot tell."""
    from ..tflite.fidelity import RAW_MEASURE, verdict

    raw = keras_acc is None and metrics.get("agreement") is None and metrics.get("metric_drop") is None
    return verdict(loss_of(metrics, keras_acc), loss_interval(metrics, keras_acc), int(metrics.get("n") or 0), budget,
                   RAW_MEASURE if raw else task_measure(metrics))


def task_measure(metrics: dict[str, Any]) -> str:
    """The task metric's loss in words (detection, segmentation); '' for classifiers."""
    task = metrics.get("task_metric")
    if not task or metrics.get("metric_drop") is None:
        return ""
    name = {"map50_95": "mAP@0.5:0.95", "miou": "mean IoU"}.get(task, task)
    return f"{name} drop against Keras's" if metrics.get(task) is not None else f"{name} lost against Keras's own results"


def choose_default(variants: Sequence[B.Variant], keras_acc: float | None, max_drop: float,
                   board: BoardTimes | None = None, predicted: Any = None) -> tuple[str, str]:
    """The fastest validated variant whose accuracy drop (or disagreement) fits the budget: (name, why)."""
    c = choose(variants, keras_acc, max_drop, board, predicted)
    return c.name, c.reason


def choose(variants: Sequence[B.Variant], keras_acc: float | None, max_drop: float,
           board: BoardTimes | None = None, predicted: Any = None) -> Choice:
    """The fastest validated variant whose accuracy drop (or disagreement) fits the budget.

    Speed comes from a board benchmark when one covers every fitting variant, else from the named board
    kind's prediction (``predicted``: :class:`.target.BoardPredictions`) when it covers them, else from
    the workstation; the :class:`Choice` says which.
    """
    ok = [v for v in variants if v.status is B.VariantStatus.OK]
    loss = lambda v: loss_of(v.metrics, keras_acc)  # noqa: E731
    fits = [v for v in ok if loss(v) <= max_drop + 1e-12]
    raw = not any(v.metrics.get("agreement") is not None or v.metrics.get("metric_drop") is not None for v in ok)
    what = ("accuracy drop" if keras_acc is not None else
            "relative output error (RMS, against Keras)" if raw else "disagreement with Keras")
    task = next((v.metrics.get("task_metric") for v in ok if v.metrics.get("task_metric")), None)
    if task:
        name = {"map50_95": "mAP@0.5:0.95", "miou": "mean IoU"}.get(task, task)
        against = "Keras's" if any(v.metrics.get(task) is not None for v in ok) else "fidelity to Keras's results"
        what = f"{name} drop (against {against})" if against == "Keras's" else f"{name} loss of {against}"
    unit = (lambda x, signed=False: f"{x:+.2%}" if signed else f"{x:.2%}") if raw and keras_acc is None and not task else pp
    if not fits:
        best = min(ok, key=loss)
        return Choice(best.name, f"no variant fits the {what} budget of {unit(max_drop)}; {best.name} has the smallest "
                                 f"({unit(loss(best))})", _basis(fits, board, predicted))
    basis = _basis(fits, board, predicted)
    if basis is Basis.BOARD_MEASURED:
        speed = lambda v: board.latency_ms[v.name]  # noqa: E731
        where = f"measured on board {board.board} (bench --on, {board.measured})"
    elif basis is Basis.BOARD_PREDICTED:
        speed = lambda v: predicted.latency_ms[v.name]  # noqa: E731
        where = (f"predicted for board {predicted.kind} (its cost table, {predicted.basis}, ±{predicted.band:.0%}; "
                 "not measured there)")
    else:
        speed = lambda v: v.metrics["latency_ms"]  # noqa: E731
        where = "measured side by side on the workstation"
    fastest = min(speed(v) for v in fits)
    # within 5% of the fastest is within measurement noise: prefer less loss, then the smaller file
    close = [v for v in fits if speed(v) <= fastest * (1 + NOISE)]
    best = min(close, key=lambda v: (round(loss(v), 6), v.bytes))
    tie = (f"; {', '.join(v.name for v in close if v is not best)} within {NOISE:.0%}, this one has less loss or a smaller file"
           if len(close) > 1 else "")
    return Choice(best.name, f"fastest {where} ({speed(best):.3f} ms p50) among variants within the {what} budget of "
                             f"{unit(max_drop)} (its {what}: {unit(loss(best), True)}){tie}", basis)


def _basis(fits: Sequence[B.Variant], board: BoardTimes | None, predicted: Any) -> Basis:
    if board is not None and fits and all(v.name in board.latency_ms for v in fits):
        return Basis.BOARD_MEASURED
    if predicted is not None and fits and all(v.name in predicted.latency_ms for v in fits):
        return Basis.BOARD_PREDICTED
    return Basis.WORKSTATION
