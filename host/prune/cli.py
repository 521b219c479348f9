"""`keras-edge prune` and `keras-edge distill`: parse, build a config, call the library, render.

TensorFlow is imported inside the command bodies only, so that `--help` stays fast.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click

from keras_edge.options import json_option, model_loading, preprocess_config, preprocess_options

from .base import Criterion, PruneMethod, Schedule


def _progress(done: int, total: int) -> None:
    """A live image counter on a terminal (as convert shows it), nothing in logs."""
    if sys.stderr.isatty():
        click.echo(f"\r  loading images {done}/{total}", err=True, nl=done == total)


def _keras_out(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    from keras_edge.options import out_file

    if value is not None and value.suffix != ".keras":
        raise click.BadParameter(f"{value} does not end in .keras (Keras 3 saves models as NAME.keras)")
    return out_file(ctx, param, value)


def _load(path: Path, unsafe: bool, imports: tuple[str, ...]):
    from ..model_io import load_model

    return load_model(path, safe_mode=not unsafe, imports=imports)


def _training_data(loaded, data_dir: Path | None, preprocess, val_split: float):
    if data_dir is None:
        return None
    from .data import load_training_data

    return load_training_data(loaded, data_dir, preprocess, val_split, progress=_progress)


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
    preprocess_options,
    click.option("--batch-size", type=int, default=32, show_default=True),
    click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True),
    click.option("--val-split", type=float, default=0.1, show_default=True,
                 help="Fraction of --data held out to report accuracy before and after."),
    model_loading,
    json_option,
]


def _with_common(f: Any) -> Any:
    for opt in reversed(_common):
        f = opt(f)
    return f


def _out(help: str):
    return click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), callback=_keras_out,
                        metavar="NAME.keras", help=help)


@click.command()
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@_out("Pruned model, NAME.keras.")
@click.option("--method", type=click.Choice([m.value for m in PruneMethod]), required=True)
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
def prune(model_path: Path, out: Path, method: str, sparsity: float, epochs: int, schedule: str, criterion: str,
          channel_multiple: int, distill: bool, data_dir: Path | None, batch_size: int, learning_rate: float,
          val_split: float, unsafe: bool, imports: tuple[str, ...], as_json: bool, **pre) -> None:
    """Prune MODEL (magnitude: zero weights; channels: remove filters) and fine-tune it on --data."""
    from ..model_io import save_model
    from .api import prune_with
    from .base import PruneConfig, no_labels_error

    preprocess = preprocess_config(pre)
    config = PruneConfig(method=method, sparsity=sparsity, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, schedule=schedule, criterion=criterion,
                         channel_multiple=channel_multiple, distill=distill, verbose=_verbosity())
    if config.epochs > 0 and data_dir is None:
        raise no_labels_error()
    with contextlib.redirect_stdout(sys.stderr):  # Keras progress must not mix with --json
        loaded = _load(model_path, unsafe, imports)
        data = _training_data(loaded, data_dir, preprocess, val_split)
        result = prune_with(loaded.model, config, *((data.x, data.y, data.x_val, data.y_val) if data else ()))
        save_model(result.model, out)
    click.echo(json.dumps({**result.to_dict(), "output": str(out)}, indent=2) if as_json
               else _render_prune(result, out))


@click.command()
@click.option("--teacher", "teacher_path", type=click.Path(path_type=Path), required=True)
@click.option("--student", "student_path", type=click.Path(path_type=Path), required=True)
@_out("Trained student, NAME.keras.")
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Softens both models' outputs.")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the soft (teacher) loss; 1 - alpha weighs the labels.")
@_with_common
def distill(teacher_path: Path, student_path: Path, out: Path, epochs: int, temperature: float, alpha: float,
            data_dir: Path | None, batch_size: int, learning_rate: float, val_split: float,
            unsafe: bool, imports: tuple[str, ...], as_json: bool, **pre) -> None:
    """Train STUDENT on --data with TEACHER's soft targets (knowledge distillation)."""
    from keras_edge.device.errors import ConfigError

    from ..model_io import save_model
    from ..tfenv import import_tf

    import_tf()  # quiets TensorFlow's start-up logs before keras is imported by the distill module
    from .distill import DistillConfig, distill as run_distill

    preprocess = preprocess_config(pre)
    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, verbose=_verbosity())
    if data_dir is None:
        raise ConfigError("data_dir", "is needed: distillation trains on labeled data", "give DIR with one subfolder per class")
    with contextlib.redirect_stdout(sys.stderr):
        teacher = _load(teacher_path, unsafe, imports)
        student = _load(student_path, unsafe, imports)
        data = _training_data(teacher, data_dir, preprocess, val_split)
        result = run_distill(teacher.model, student.model, data.x, data.y, config, data.x_val, data.y_val)
        save_model(result.model, out)
    summary = {**result.to_dict(), "output": str(out)}
    click.echo(json.dumps(summary, indent=2) if as_json else
               f"teacher {_pct(result.teacher_accuracy)}, student {_pct(result.student_accuracy_before)} → "
               f"{_pct(result.student_accuracy_after)} (validation accuracy)\nwrote {out}")
