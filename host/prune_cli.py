"""`keras-edge prune` and `keras-edge distill`: parse, build a config, call the library, render.

TensorFlow is imported inside the command bodies only, so that `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from keras_edge.device.errors import DataError, ModelError
from keras_edge.device.preprocess import PRESETS, PreprocessSpec

from .prune import PRUNE_METHODS, Criterion, Schedule


def _load_model(path: Path, unsafe: bool) -> Any:
    from .model_io import load_model

    return load_model(path, safe_mode=not unsafe).model


def _spec_for(model: Any, preset: str | None) -> PreprocessSpec:
    """The same inference as convert: a leading Rescaling/Normalization means raw pixels."""
    from .model_io import leading_preprocessing

    shape = model.input_shape
    if isinstance(shape, list) or len(shape) != 4 or None in shape[1:] or shape[-1] not in (1, 3):
        raise ModelError(f"model input shape {shape} is not a fixed-size image (batch, H, W, 1|3)",
                         "pruning from an image folder needs a model with a fixed-size image input")
    if preset is None:
        if not leading_preprocessing(model):
            raise DataError("the model does not start with a Rescaling/Normalization layer, so keras-edge cannot tell "
                            "how its inputs were normalised", "pass --preprocess tf|torch|caffe|unit|raw")
        preset = "raw"
    return PreprocessSpec.from_preset(preset, shape[1], shape[2], shape[3])


def _data_for(model: Any, data_dir: Path | None, preset: str | None, val_split: float) -> tuple[Any, ...]:
    if data_dir is None:
        return None, None, None, None
    if not (0.0 <= val_split < 1.0):
        raise DataError(f"--val-split {val_split} is outside [0, 1)", "pass a fraction such as 0.1")
    from keras_edge.calibration.dataset import load_labeled

    data = load_labeled(data_dir, _spec_for(model, preset), progress=_progress)
    outputs = model.output_shape[-1]
    if len(data.class_names) != outputs:
        raise DataError(f"{data_dir} has {len(data.class_names)} class subfolders but the model has {outputs} outputs",
                        "give one subfolder per model output; sorted names map to outputs 0, 1, ...")
    order = np.random.default_rng(0).permutation(len(data.y))
    n_val = int(len(order) * val_split)
    val, train = order[:n_val], order[n_val:]
    return data.x[train], data.y[train], data.x[val], data.y[val]


def _progress(done: int, total: int) -> None:
    """A live image counter on a terminal (as convert shows it), nothing in logs."""
    if sys.stderr.isatty():
        click.echo(f"\r  loading images {done}/{total}", err=True, nl=done == total)


def _check_output(out: Path) -> None:
    if out.suffix != ".keras":
        raise ModelError(f"output {out} does not end in .keras", "Keras 3 saves models as NAME.keras")


def _save_atomic(model: Any, out: Path) -> None:
    """Write next to the target, then rename: an interrupted run leaves the previous file intact."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".keras", dir=out.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _verbosity() -> int:
    return 1 if sys.stderr.isatty() else 2


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _count(v: int | None) -> str:
    return "unknown" if v is None else f"{v:,}"


def _render_prune(result: Any, out: Path) -> str:
    lines = [f"{'layer':<28} {'class':<18} {'before':>9} {'after':>9} {'sparsity':>9}"]
    lines += [f"{r.name:<28} {r.class_name:<18} {r.before:>9} {r.after:>9} {100 * r.sparsity:>8.1f}%"
              for r in result.layers]
    lines += [f"kept whole: {s.name} ({s.class_name}): {s.reason}" for s in result.skipped]
    lines += [f"{result.method}: {100 * result.achieved:.1f}% of prunable {result.layers[0].unit} removed "
              f"(asked {100 * result.sparsity:.1f}%)",
              f"params {result.params_before:,} → {result.params_after:,} (non-zero {result.nonzero_before:,} → "
              f"{result.nonzero_after:,}); FLOPs {_count(result.flops_before)} → {_count(result.flops_after)}",
              f"validation accuracy {_pct(result.accuracy_before)} → {_pct(result.accuracy_after)}",
              f"wrote {out}"]
    return "\n".join(lines)


_common = [
    click.option("--data", "data_dir", type=click.Path(path_type=Path),
                 help="Labeled images, DIR/<class>/<image> (needed to fine-tune or distil)."),
    click.option("--preprocess", "preset", type=click.Choice(list(PRESETS)),
                 help="Normalisation preset; default: raw pixels when the model starts with a Rescaling layer."),
    click.option("--batch-size", type=int, default=32, show_default=True),
    click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True),
    click.option("--val-split", type=float, default=0.1, show_default=True,
                 help="Fraction of --data held out to report accuracy before and after."),
    click.option("--unsafe", is_flag=True, help="Allow models with Lambda layers (runs code from the file)."),
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Pruned model, NAME.keras.")
@click.option("--method", type=click.Choice(list(PRUNE_METHODS)), required=True)
@click.option("--sparsity", type=float, required=True, help="Fraction to remove, in (0, 1).")
@click.option("--epochs", type=int, default=2, show_default=True, help="Fine-tuning epochs (0: prune only).")
@click.option("--schedule", type=click.Choice([s.value for s in Schedule]), default="polynomial", show_default=True,
              help="Magnitude pruning's sparsity schedule.")
@click.option("--criterion", type=click.Choice([c.value for c in Criterion]), default="l1", show_default=True,
              help="Channel pruning's filter ranking.")
@click.option("--channel-multiple", type=int, default=8, show_default=True,
              help="Channel pruning keeps a multiple of this many channels per layer (SIMD-friendly; 1: exact).")
@click.option("--distill", is_flag=True, help="Fine-tune with the unpruned model as teacher.")
@_with_common
def prune(model_path: Path, output: Path, method: str, sparsity: float, epochs: int, schedule: str, criterion: str,
          channel_multiple: int, distill: bool, data_dir: Path | None, preset: str | None, batch_size: int,
          learning_rate: float, val_split: float, unsafe: bool, as_json: bool) -> None:
    """Prune MODEL (magnitude: zero weights; channels: remove filters) and fine-tune it on --data."""
    from .prune import PruneConfig, no_labels_error, prune_with

    config = PruneConfig(method=method, sparsity=sparsity, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, schedule=schedule, criterion=criterion,
                         channel_multiple=channel_multiple, distill=distill,
                         verbose=_verbosity())
    _check_output(output)
    if config.epochs > 0 and data_dir is None:
        raise no_labels_error()
    with contextlib.redirect_stdout(sys.stderr):  # Keras progress must not mix with --json
        model = _load_model(model_path, unsafe)
        x, y, x_val, y_val = _data_for(model, data_dir, preset, val_split)
        result = prune_with(model, config, x, y, x_val, y_val)
        _save_atomic(result.model, output)
    click.echo(json.dumps({**result.to_dict(), "output": str(output)}, indent=2) if as_json
               else _render_prune(result, output))


@click.command()
@click.option("--teacher", "teacher_path", type=click.Path(path_type=Path), required=True)
@click.option("--student", "student_path", type=click.Path(path_type=Path), required=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Trained student, NAME.keras.")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Softens both models' outputs.")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the soft (teacher) loss; 1 - alpha weighs the labels.")
@_with_common
def distill(teacher_path: Path, student_path: Path, output: Path, epochs: int, temperature: float, alpha: float,
            data_dir: Path | None, preset: str | None, batch_size: int, learning_rate: float, val_split: float,
            unsafe: bool, as_json: bool) -> None:
    """Train STUDENT on --data with TEACHER's soft targets (knowledge distillation)."""
    from .distill import DistillConfig, distill as run_distill

    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, verbose=_verbosity())
    if data_dir is None:
        raise DataError("distillation needs labeled data", "pass --data DIR with one subfolder per class")
    _check_output(output)
    with contextlib.redirect_stdout(sys.stderr):
        teacher, student = _load_model(teacher_path, unsafe), _load_model(student_path, unsafe)
        x, y, x_val, y_val = _data_for(teacher, data_dir, preset, val_split)
        result = run_distill(teacher, student, x, y, config, x_val, y_val)
        _save_atomic(result.model, output)
    summary = {**result.to_dict(), "output": str(output)}
    click.echo(json.dumps(summary, indent=2) if as_json else
               f"teacher {_pct(result.teacher_accuracy)}, student {_pct(result.student_accuracy_before)} → "
               f"{_pct(result.student_accuracy_after)} (validation accuracy)\nwrote {output}")
