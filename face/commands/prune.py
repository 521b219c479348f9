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

from keras_edge.options import json_flag, model_loading, preprocess_config, preprocess_options

from keras_edge.device.contract import ConfigError

from keras_edge.host.prune.base import Criterion, PruneMethod, Schedule


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
    from keras_edge.host.model_io import load_model

    return load_model(path, safe_mode=not unsafe, imports=imports)


def _training_data(loaded, data_dir: Path | None, preprocess, val_split: float):
    if data_dir is None:
        return None
    from keras_edge.host.prune.data import load_training_data

    return load_training_data(loaded, data_dir, preprocess, val_split, progress=_progress)


def _verbosity() -> int:
    return 1 if sys.stderr.isatty() else 2


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _count(v: int | None) -> str:
    return "unknown" if v is None else f"{v:,}"


def _against(result: Any, budget: float | None) -> str:
    if budget is None or result.accuracy_before is None or result.accuracy_after is None:
        return ""
    drop = result.accuracy_before - result.accuracy_after
    return (f" (drop {drop * 100:+.2f} pp: {'within' if drop <= budget + 1e-12 else 'OVER'} the budget of {budget * 100:.2f} pp; "
            "Keras accuracy, convert measures int8)")


def _render_prune(result: Any, out: Path, budget: float | None = None) -> str:
    lines = [f"{'layer':<28} {'class':<18} {'before':>9} {'after':>9} {'sparsity':>9}"]
    lines += [f"{r.name:<28} {r.class_name:<18} {r.before:>9} {r.after:>9} {100 * r.sparsity:>8.1f}%"
              for r in result.layers]
    lines += [f"kept whole: {s.name} ({s.class_name}): {s.reason}" for s in result.skipped]
    lines += [f"{result.method}: {100 * result.achieved:.1f}% of prunable {result.layers[0].unit} removed "
              f"(asked {100 * result.sparsity:.1f}%)",
              f"params {result.params_before:,} → {result.params_after:,} (non-zero {result.nonzero_before:,} → "
              f"{result.nonzero_after:,}); FLOPs {_count(result.flops_before)} → {_count(result.flops_after)}",
              f"validation accuracy {_pct(result.accuracy_before)} → {_pct(result.accuracy_after)}"
              + _against(result, budget),
              f"wrote {out}"]
    return "\n".join(lines)


def _preflight(models: tuple[Path, ...], data_dir: Path | None) -> None:
    """Wrong paths fail before TensorFlow starts (seconds, and its start-up logs); then it is imported quietly."""
    from keras_edge.calibration.dataset import check_source
    from keras_edge.host.model_io import check_model_path
    from keras_edge.host.tfenv import import_tf

    for model in models:
        check_model_path(model)
    if data_dir is not None:
        check_source(data_dir)
    import_tf()   # before keras is imported by the pruning modules, so that its logs stay hidden


def _data_option(required: bool):
    return click.option("--data", "data_dir", type=click.Path(path_type=Path), required=required, metavar="DIR",
                        help="Labeled images, DIR/<class>/<image>" + ("." if required else
                                                                     " (needed to fine-tune or to search)."))


_common = [
    preprocess_options,
    click.option("--batch-size", type=int, default=32, show_default=True),
    click.option("--lr", "learning_rate", type=float, default=1e-3, show_default=True),
    click.option("--val-split", type=float, default=0.1, show_default=True,
                 help="Fraction of --data held out to report accuracy before and after."),
    model_loading,
    json_flag("one pretty-printed document: the result and the file written"),
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
@click.option("--method", type=click.Choice([m.value for m in PruneMethod]), default="channels", show_default=True)
@click.option("--sparsity", type=float, default=None,
              help="Fraction to remove, in (0, 1), the same in every layer. Without it, channel pruning searches "
                   "for the largest pruning within --max-accuracy-drop.")
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="Budget: int8 accuracy drop against the unpruned Keras model (as convert's).")
@click.option("--target-speedup", type=float, default=None, help="Search: stop at the first level this much faster (int8).")
@click.option("--levels", default=None, metavar="S,S,…", help="Search: the global levels to try (default 0.3,0.45,0.6,0.7,0.8).")
@click.option("--epochs", type=int, default=10, show_default=True,
              help="Fine-tuning epochs, a ceiling: channel pruning stops early once accuracy recovers or stalls (0: prune only).")
@click.option("--schedule", type=click.Choice([s.value for s in Schedule]), default="polynomial", show_default=True,
              help="Magnitude pruning's sparsity schedule.")
@click.option("--criterion", type=click.Choice([c.value for c in Criterion]), default="l1", show_default=True,
              help="Channel pruning's filter ranking.")
@click.option("--channel-multiple", type=int, default=8, show_default=True,
              help="Channel pruning keeps a multiple of this many channels per layer (SIMD-friendly; 1: exact).")
@click.option("--distill/--no-distill", default=None,
              help="Fine-tune with the unpruned model as teacher. Default: the search measures both and keeps the "
                   "better; a fixed --sparsity fine-tunes without.")
@_data_option(required=False)
@_with_common
def prune(model_path: Path, out: Path, method: str, sparsity: float | None, max_accuracy_drop: float,
          target_speedup: float | None, levels: str | None, epochs: int, schedule: str, criterion: str,
          channel_multiple: int, distill: bool | None, data_dir: Path | None, batch_size: int, learning_rate: float,
          val_split: float, unsafe: bool, imports: tuple[str, ...], as_json: bool, **pre) -> int:
    """Prune MODEL (channels: remove filters; magnitude: zero weights) and fine-tune it on --data.

    Without --sparsity, channel pruning measures each layer's sensitivity and searches for the largest
    pruning whose fine-tuned int8 model stays within --max-accuracy-drop, printing the curve it measured.
    """
    _preflight((model_path,), data_dir)
    from keras_edge.host.model_io import save_model
    from keras_edge.host.prune.base import PruneConfig, no_labels_error
    from keras_edge.host.prune.search import SearchConfig

    preprocess = preprocess_config(pre)
    if sparsity is None:
        if method != PruneMethod.CHANNELS:
            raise ConfigError("sparsity", "is needed for magnitude pruning: zeroed weights make the file compress "
                              "better, not the model faster, so there is no speed-up to search for",
                              "give the fraction to remove, such as 0.8")
        search_cfg = SearchConfig(max_accuracy_drop=max_accuracy_drop, target_speedup=target_speedup,
                                  levels=_levels(levels), epochs=max(epochs, 1), batch_size=batch_size,
                                  learning_rate=learning_rate, criterion=criterion, channel_multiple=channel_multiple,
                                  distill=distill)
        if data_dir is None:
            raise no_labels_error()
        return _search(model_path, out, search_cfg, data_dir, preprocess, val_split, unsafe, imports, as_json)
    config = PruneConfig(method=method, sparsity=sparsity, epochs=epochs, batch_size=batch_size,
                         learning_rate=learning_rate, schedule=schedule, criterion=criterion,
                         channel_multiple=channel_multiple, distill=bool(distill), verbose=_verbosity())
    if config.epochs > 0 and data_dir is None:
        raise no_labels_error()
    from keras_edge.api import prune as prune_with

    with contextlib.redirect_stdout(sys.stderr):  # Keras progress must not mix with --json
        loaded = _load(model_path, unsafe, imports)
        data = _training_data(loaded, data_dir, preprocess, val_split)
        result = prune_with(loaded.model, config, *((data.x, data.y, data.x_val, data.y_val) if data else ()))
        save_model(result.model, out)
    click.echo(json.dumps({**result.to_dict(), "output": str(out)}, indent=2) if as_json
               else _render_prune(result, out, max_accuracy_drop))
    return 0


def _levels(text: str | None) -> tuple[float, ...]:
    from keras_edge.host.prune.search import LEVELS

    if not text:
        return LEVELS
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of fractions (e.g. 0.3,0.5,0.7)",
                                 param_hint="'--levels'") from None


def _search(model_path: Path, out: Path, cfg, data_dir: Path, preprocess, val_split: float, unsafe: bool,
            imports: tuple[str, ...], as_json: bool) -> int:
    from keras_edge.host.model_io import save_model
    from keras_edge.host.prune.search import search

    say = lambda s: click.echo(s, err=True)  # noqa: E731
    with contextlib.redirect_stdout(sys.stderr):
        loaded = _load(model_path, unsafe, imports)
        data = _training_data(loaded, data_dir, preprocess, val_split)
        if not len(data.y_val):
            raise ConfigError("val_split", "leaves no validation images, so the budget cannot be checked",
                              "give a fraction such as 0.2")
        result = search(loaded.model, data.x, data.y, data.x_val, data.y_val, cfg, log=say)
        if result.model is not None:
            save_model(result.model, out)
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "output": str(out) if result.model is not None else None}, indent=2))
    else:
        click.echo(render_curve(result))
        click.echo(f"wrote {out}" if result.model is not None else "no model written")
    return 0 if result.model is not None else 1


def render_curve(result) -> str:
    """The measured curve as a table, the chosen row marked, and the verdict."""
    head = ("level", "removed", "params", "FLOPs", "int8 ms", "unpruned ms", "speed-up", "Keras acc", "int8 acc",
            "pruning cost", "float cost", "budget", "epochs")
    rows = [head]
    for p in (result.base, *result.points):
        mark = " *" if result.chosen is p else ""
        rows.append((f"{p.level:.0%}{mark}", f"{p.achieved:.0%}", f"{p.params:,}", _count(p.flops), f"{p.int8_ms:.3f}",
                     f"{p.base_ms:.3f}" if p.base_ms is not None else "-", f"{p.speedup:.2f}x", _pct(p.accuracy), _pct(p.int8_accuracy), f"{p.drop * 100:+.2f} pp",
                     f"{p.float_drop * 100:+.2f} pp" if p.float_drop is not None else "-", "ok" if p.within else "over", str(p.epochs)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([*lines, f"distillation: {result.distill_note}", result.verdict,
                      "(* chosen; speed-up = unpruned ms / int8 ms: the unpruned int8 model timed in the same rounds "
                      "as that level's, side by side; pruning cost = unpruned int8 accuracy − pruned int8 accuracy, "
                      "the budget's number; float cost = the same in Keras"
                      + (f"; quantization's own loss, unpruned Keras − unpruned int8: {result.base.quant_loss * 100:+.2f} pp)"
                         if result.base.quant_loss is not None else ")")])


@click.command()
@click.option("--teacher", "teacher_path", type=click.Path(path_type=Path), required=True, metavar="MODEL",
              help="The trained model whose soft outputs the student learns (.keras, .h5 or SavedModel dir); unchanged.")
@click.option("--student", "student_path", type=click.Path(path_type=Path), required=True, metavar="MODEL",
              help="The smaller (e.g. pruned) model to train, with the teacher's classes; its trained copy goes to -o.")
@_out("Trained student, NAME.keras.")
@_data_option(required=True)
@click.option("--epochs", type=int, default=5, show_default=True)
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Softens both models' outputs.")
@click.option("--alpha", type=float, default=0.5, show_default=True,
              help="Weight of the soft (teacher) loss; 1 - alpha weighs the labels.")
@_with_common
def distill(teacher_path: Path, student_path: Path, out: Path, epochs: int, temperature: float, alpha: float,
            data_dir: Path, batch_size: int, learning_rate: float, val_split: float,
            unsafe: bool, imports: tuple[str, ...], as_json: bool, **pre) -> None:
    """Train the --student model on --data with the --teacher model's soft targets (knowledge distillation)."""
    _preflight((teacher_path, student_path), data_dir)
    from keras_edge.host.model_io import save_model
    from keras_edge.host.prune.distill import DistillConfig, distill as run_distill

    preprocess = preprocess_config(pre)
    config = DistillConfig(temperature=temperature, alpha=alpha, epochs=epochs, batch_size=batch_size,
                           learning_rate=learning_rate, verbose=_verbosity())
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
