"""Click commands for the workstation: convert and report. Bodies stay short; the library does the work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from keras_edge.device.preprocess import PRESETS, ColorOrder, Interpolation, ResizeMode

from .variants import DEFAULT_VARIANTS, VARIANTS, IoType


def _floats(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None


def _shape(ctx, param, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        dims = tuple(int(t) for t in text.replace("x", ",").split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not H,W,C (for example 224,224,3)") from None
    if not dims or any(d <= 0 for d in dims):
        raise click.BadParameter(f"{text!r}: every dimension must be positive")
    return dims


def _variants(ctx, param, text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    if "all" in names:
        return tuple(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise click.BadParameter(f"unknown variant(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(VARIANTS)}, all")
    return names


class _Progress:
    """Image-loading progress on stderr: a live counter on a terminal, nothing in logs."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            click.echo(f"\r  preprocessing images {done}/{total}", err=True, nl=done == total)


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--out", "out", required=True, type=click.Path(path_type=Path), help="Bundle directory to write.")
@click.option("--calib", required=True, type=click.Path(path_type=Path),
              help="Representative images (folder, class subfolders give labels) or a .npy/.npz of inputs.")
@click.option("--eval", "eval_dir", type=click.Path(path_type=Path),
              help="Evaluation data; default: a held-out split of --calib.")
@click.option("--variants", default=",".join(DEFAULT_VARIANTS), show_default=True, callback=_variants,
              help=f"Comma-separated from: {', '.join(VARIANTS)}, or all.")
@click.option("--io", type=click.Choice([t.value for t in IoType]), default="uint8", show_default=True,
              help="Input/output type of the int8 variant.")
@click.option("--preprocess", "preset", type=click.Choice(list(PRESETS)),
              help="Normalisation preset (keras.applications modes); default: inferred from a leading Rescaling layer.")
@click.option("--scale", type=float, help="Explicit normalisation: (pixel*scale - mean)/std.")
@click.option("--mean", help="Comma-separated per-channel mean (after scale).")
@click.option("--std", help="Comma-separated per-channel std (after scale).")
@click.option("--resize", type=click.Choice([m.value for m in ResizeMode]), default="stretch", show_default=True)
@click.option("--interpolation", type=click.Choice([m.value for m in Interpolation]), default="bilinear", show_default=True)
@click.option("--color", type=click.Choice([ColorOrder.RGB.value, ColorOrder.BGR.value]), help="Channel order the model expects.")
@click.option("--input-shape", callback=_shape, help="H,W,C when the model's input size is not fixed.")
@click.option("--labels", type=click.Path(path_type=Path), help="Class names, one per line (default: class folder names).")
@click.option("--name", help="Bundle name (default: the model file's stem).")
@click.option("--calib-samples", type=int, default=200, show_default=True)
@click.option("--eval-samples", type=int, default=300, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--bake-preprocess", is_flag=True, help="Fold normalisation into the graph: the model takes raw pixels.")
@click.option("--max-accuracy-drop", type=float, default=0.01, show_default=True,
              help="Accuracy budget for choosing the default variant (absolute top-1 drop).")
@click.option("--prune", "prune", multiple=True, metavar="METHOD:SPARSITY",
              help="Also add pruned variants (fp32-/int8-pruned-METHOD), e.g. channels:0.5 or magnitude:0.8; "
                   "fine-tunes on the labeled --calib images.")
@click.option("--prune-epochs", type=int, default=3, show_default=True, help="Fine-tuning epochs after pruning.")
@click.option("--threads", type=int, help="Interpreter threads for validation latency (default: all cores).")
@click.option("--unsafe", is_flag=True, help="Load models with Lambda layers/custom code (only for files you trust).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's and the converter's logs.")
def convert(model, out, calib, eval_dir, variants, io, preset, scale, mean, std, resize, interpolation, color,
            input_shape, labels, name, calib_samples, eval_samples, seed, bake_preprocess, max_accuracy_drop,
            prune, prune_epochs, threads, unsafe, as_json, verbose):
    """Convert MODEL (.keras, .h5 or SavedModel dir) into a bundle of validated TFLite variants."""
    from .convert import ConvertConfig
    from .convert import convert as run_convert
    from .report import table

    cfg = ConvertConfig(model=model, out=out, calib=calib, eval=eval_dir, variants=variants, io=io, preset=preset,
                        scale=scale, mean=_floats(mean), std=_floats(std), resize=resize, interpolation=interpolation,
                        color=color, input_shape=input_shape, labels=labels, name=name, calib_samples=calib_samples,
                        eval_samples=eval_samples, seed=seed, bake_preprocess=bake_preprocess,
                        safe_mode=not unsafe, threads=threads, max_accuracy_drop=max_accuracy_drop,
                        prune=tuple(prune), prune_epochs=prune_epochs, verbose=verbose)
    log = (lambda s: click.echo(s, err=True))
    result = run_convert(cfg, log=log, progress=_Progress())
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(table(result.to_dict()))
        click.echo(f"\ndefault: {result.manifest.default} ({result.manifest.default_reason})")
        click.echo(f"bundle written to {out}")


@click.command()
@click.argument("bundle_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print report.json instead of the table.")
def report(bundle_dir, as_json):
    """Show BUNDLE_DIR's report and regenerate report.md and report.png from report.json."""
    from keras_edge.device.bundle import REPORT_JSON, read_manifest
    from keras_edge.device.errors import BundleError

    from .report import table, write_report

    read_manifest(bundle_dir)
    path = bundle_dir / REPORT_JSON
    if not path.is_file():
        raise BundleError(f"{bundle_dir} has no {REPORT_JSON}", "reconvert the bundle with `keras-edge convert`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON ({e})", "reconvert the bundle with `keras-edge convert`") from None
    write_report(bundle_dir, data)
    click.echo(json.dumps(data, indent=2) if as_json else table(data))
