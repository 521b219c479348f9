"""`keras-edge convert`: parse, build a :class:`ConvertConfig`, call the library, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from keras_edge.options import (json_flag, model_loading, out_option, preprocess_config, preprocess_options,
                                task_config, task_options,
                                threads_one, verbose_option)

from keras_edge.host.tflite.variants import DEFAULT_VARIANTS, VARIANTS, IoType


def _variants(ctx, param, text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if "all" in names:
        return tuple(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}, all")
    return names


def _prune_specs(ctx, param, values: tuple[str, ...]):
    """``channels:0.5`` → PruneSpec("channels", 0.5); the library never sees the CLI's string form."""
    from keras_edge.device.contract import ConfigError

    from keras_edge.host.prune.base import PruneMethod, PruneSpec

    specs = []
    for text in values:
        method, sep, value = text.partition(":")
        try:
            sparsity = float(value) if sep else None
        except ValueError:
            sparsity = float("nan")
        if method not in list(PruneMethod) or (sep and not sparsity == sparsity) or (not sep and method != "channels"):
            raise click.BadParameter(f"{text!r} is not METHOD:SPARSITY; write e.g. channels:0.5, with METHOD one of: "
                                     f"{', '.join(PruneMethod)}")
        try:
            specs.append(PruneSpec(method, sparsity))
        except ConfigError as e:  # the spec's own check, said in terms of this flag's value
            raise click.BadParameter(f"{text!r}: the sparsity {e.problem}; {e.fix}") from None
    return tuple(specs)


class _Progress:
    """Image-loading progress on stderr: a live counter on a terminal, nothing in logs."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            click.echo(f"\r  preprocessing images {done}/{total}", err=True, nl=done == total)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@out_option("Bundle directory to write (replaced atomically).", directory=True)
@click.option("--calib", required=True, type=click.Path(path_type=Path),
              help="Representative images (folder, class subfolders give labels) or a .npy/.npz of inputs.")
@click.option("--eval", "eval", type=click.Path(path_type=Path),
              help="Evaluation data; default: a held-out fifth of --calib.")
@click.option("--variants", default=",".join(DEFAULT_VARIANTS), show_default=True, callback=_variants,
              help=f"Comma-separated from: {', '.join(VARIANTS)}, or all.")
@click.option("--io", type=click.Choice([t.value for t in IoType]), default="uint8", show_default=True,
              help="Input/output type of the int8 variant.")
@preprocess_options
@click.option("--labels", type=click.Path(path_type=Path), help="Class names, one per line (default: class folder names).")
@click.option("--name", help="Bundle name (default: the model file's stem).")
@click.option("--calib-samples", type=int, default=200, show_default=True, help="Images used for calibration.")
@click.option("--eval-samples", type=int, default=None, help="Cap on evaluation images (default: all of them).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bake-preprocess", is_flag=True, help="Fold normalisation into the graph: the model takes raw pixels.")
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="Accuracy budget for choosing the default variant (absolute top-1 drop; for detection the "
                   "mAP@0.5:0.95 drop, for segmentation the mean-IoU drop).")
@click.option("--prune", "prune", multiple=True, metavar="METHOD[:SPARSITY]", callback=_prune_specs,
              help="Also add pruned variants (fp32-/int8-pruned-METHOD), e.g. channels:0.5 or magnitude:0.8, or "
                   "`channels` alone: the largest channel pruning within --max-accuracy-drop (a measured search); "
                   "fine-tunes on the labeled --calib images.")
@click.option("--prune-epochs", type=int, default=3, show_default=True, help="Fine-tuning epochs after pruning.")
@click.option("--search-time", type=float, default=120.0, show_default=True, metavar="SECONDS",
              help="Time limit of the whole int8-selective search (calibration, layer ranking, candidates) when "
                   "int8 misses the budget.")
@click.option("--eval-time", type=float, default=600.0, show_default=True, metavar="SECONDS",
              help="Most time one variant's evaluation may take, estimated from one timed inference; a variant over it "
                   "is not evaluated (said, and recorded in the report).")
@click.option("--no-ptq", "ptq", flag_value=False, default=True,
              help="Skip equalization and bias correction (the int8-ptq variant) when int8 misses the budget.")
@click.option("--qat", "qat_always", is_flag=True,
              help="Fine-tune with simulated int8 (int8-qat) even when the post-training steps meet the budget "
                   "(by default it runs only when they miss it).")
@click.option("--no-qat", "qat", flag_value=False, default=True,
              help="Skip quantization-aware fine-tuning (int8-qat), which runs by default when int8 and int8-ptq miss "
                   "the budget.")
@click.option("--qat-time", type=float, default=90.0, show_default=True, metavar="SECONDS",
              help="Time limit of the quantization-aware fine-tuning (label-free, the float model as teacher).")
@click.option("--qat-epochs", type=int, default=40, show_default=True,
              help="Most fine-tuning epochs of int8-qat (a ceiling: --qat-time usually ends it first).")
@click.option("--int8-softmax", "float_softmax", flag_value=False, default=True,
              help="Keep a classifier's final softmax in int8 with a uint8 output (a fully integer file, for "
                   "accelerators that need one). By default int8 variants compute it in float over int8 logits, so "
                   "probabilities are not cut to 1/256 steps.")
@click.option("--keep-input-grid", "pixel_grid", flag_value=False, default=True,
              help="Keep a 'tf'-style mean of 127.5 as it is. By default it moves to 127 and the first layer absorbs "
                   "the half step, so integer inputs hold every pixel exactly (only where that is exact in float).")
@task_options
@click.option("--annotations", type=click.Path(path_type=Path), metavar="PATH",
              help="Ground truth of the evaluation images: YOLO labels folder, COCO .json, or masks folder "
                   "(segmentation); scores variants by mAP / mean IoU. The calibration folder may be unlabeled.")
@click.option("--threads", callback=threads_one, metavar="N", help="Interpreter threads for validation latency (default: all cores).")
@click.option("--board", metavar="KIND", default=None,
              help="Decide for this board kind: predict each variant's latency there (pi4, pi5, pi3, pizero2, pi4-armv7, "
                   "pi2, or one of yours in $KERAS_EDGE_BOARDS) and choose the default, the int8-selective and the "
                   "pruning search by it unless the board was measured (bench --on).")
@model_loading
@json_flag("one pretty-printed document: the report (every variant's metrics, the default and why)")
@verbose_option
def convert(**kw) -> None:
    """Convert MODEL (.keras, .h5 or SavedModel dir) into a bundle of validated TFLite variants."""
    from keras_edge.host.report.render import table
    from keras_edge.api import convert as run_convert

    from keras_edge.host.convert.core import ConvertConfig

    as_json = kw.pop("as_json")
    preprocess = preprocess_config(kw)
    task = task_config(kw)
    cfg = ConvertConfig(preprocess=preprocess, task_options=task, safe_mode=not kw.pop("unsafe"), **kw)
    result = run_convert(cfg, log=lambda s: click.echo(s, err=True), progress=_Progress())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(table(result.report.to_dict()))
        click.echo(f"\ndefault: {result.manifest.default} ({result.manifest.default_reason}; "
                   f"basis: {result.manifest.default_basis})")
        click.echo(f"bundle written to {cfg.out}; every column is explained in {Path(cfg.out) / 'report.md'}")
