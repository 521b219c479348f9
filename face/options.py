"""The one flag vocabulary every command shares, and the parsers behind it.

-o/--out is the output everywhere; --threads is always a comma-separated list of positive integers
(commands that run one configuration take exactly one); --json prints JSON on stdout; -v/--verbose
shows TensorFlow's and the converter's logs; --ssh-option/--ssh-config/--connect-timeout reach boards.
No TensorFlow and no host code are imported here.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import click

F = Callable[..., Any]


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(f: F) -> F:
        for deco in reversed(decorators):
            f = deco(f)
        return f
    return apply


# ---------------------------------------------------------------- parsers (click callbacks)

def parse_ints(text: str, what: str, example: str) -> tuple[int, ...]:
    """``"1,2,4"`` → (1, 2, 4): positive integers only, with a message naming the flag."""
    parts = [t.strip() for t in text.replace("x", ",").split(",")]
    try:
        values = tuple(int(t) for t in parts if t)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a list of whole numbers; write it like {example}") from None
    if not values or any(v <= 0 for v in values) or len(values) != len(parts):
        raise click.BadParameter(f"{text!r}: every value must be a positive whole number; write it like {example}")
    return values


def threads_list(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[int, ...]:
    return parse_ints(text, "--threads", "4 or 1,2,4") if text else ()


def threads_one(ctx: click.Context, param: click.Parameter, text: str | None) -> int | None:
    if not text:
        return None
    values = parse_ints(text, "--threads", "4")
    if len(values) != 1:
        raise click.BadParameter(f"{text!r} gives {len(values)} thread counts; this command runs with one "
                                 "(`keras-edge bench` compares several)")
    return values[0]


def shape_option(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[int, ...] | None:
    return parse_ints(text, "--input-shape", "224,224,3") if text else None


def named_shapes_option(ctx: click.Context, param: click.Parameter,
                        values: tuple[str, ...]) -> tuple[tuple[str | None, tuple[int, ...]], ...]:
    """Repeated ``--input-shape``: ``H,W,C`` for a model with one input, ``NAME=H,W,C`` per input otherwise."""
    out = []
    for text in values or ():
        name, sep, dims = text.rpartition("=")
        if sep and not name.strip():
            raise click.BadParameter(f"{text!r} has no input name before '='; write it like image=224,224,3")
        out.append((name.strip() or None, parse_ints(dims, "--input-shape", "224,224,3 or image=224,224,3")))
    return tuple(out)


def floats(ctx: click.Context, param: click.Parameter, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(t) for t in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers (e.g. 0.485,0.456,0.406)") from None


# ---------------------------------------------------------------- output paths, checked before any work

def check_writable(path: Path, *, kind: str = "file") -> Path:
    """Fail now, in one line, if ``path`` (a file or directory to create/replace) cannot be written.

    The nearest existing ancestor must be a writable directory; an existing target must be of the
    right kind. Nothing is left behind here.
    """
    path = Path(path)
    if path.exists():
        if kind == "file" and path.is_dir():
            raise click.BadParameter(f"{path} is a directory; give a file name")
        if kind == "dir" and not path.is_dir():
            raise click.BadParameter(f"{path} exists and is not a directory; choose another output path")
        probe = path if kind == "dir" else path.parent
    else:
        probe = path.parent
    probe = probe if str(probe) else Path(".")
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise click.BadParameter(f"{probe} is a file, so {path} cannot be created under it")
    if not os.access(probe, os.W_OK | os.X_OK) or not _can_create_in(probe):
        raise click.BadParameter(f"{probe} is not writable, so {path} cannot be written; choose another place")
    return path


def _can_create_in(directory: Path) -> bool:
    """Whether a file can really be created in ``directory``: access() says yes to root everywhere,
    also on read-only file systems and in /proc, so try it (the probe is removed at once)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".keras-edge-probe-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def out_file(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return None if value is None else check_writable(value, kind="file")


def out_dir(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    return None if value is None else check_writable(value, kind="dir")


def out_option(help: str, *, required: bool = True, directory: bool = False, metavar: str | None = None) -> Callable[[F], F]:
    return click.option("-o", "--out", "out", required=required, type=click.Path(path_type=Path),
                        callback=out_dir if directory else out_file, metavar=metavar or ("DIR" if directory else "FILE"),
                        help=help)


# ---------------------------------------------------------------- shared option groups

def json_flag(prints: str) -> Callable[[F], F]:
    """--json, saying what this command prints (README: "What --json prints")."""
    return click.option("--json", "as_json", is_flag=True,
                        help=f"JSON on stdout: {prints}. Progress and notes stay on stderr; an error prints its "
                             "`error:` line on stderr and {\"error\": …, \"exit_code\": …} on stdout.")


json_option = json_flag("the result")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's and the converter's logs.")

model_loading = _stack(
    click.option("--unsafe", is_flag=True, help="Load models with Lambda layers/custom code (only files you trust)."),
    click.option("--import", "imports", multiple=True, metavar="MODULE",
                 help="Import MODULE (dotted name or .py file) first: the Keras layer/model classes it defines "
                      "(registered or not) and registers can load. Repeatable."),
)


def engine_options(*, multi_threads: bool = False, threads_default: str = "all cores") -> Callable[[F], F]:
    """--threads, --accelerator, --no-fallback, --gpu-delegate for commands that load a model."""
    from keras_edge.device.engine import Accelerator
    from keras_edge.device.engine import DEFAULT_TIMEOUT_S

    return _stack(
        click.option("--threads", callback=threads_list if multi_threads else threads_one, metavar="N[,N…]" if multi_threads else "N",
                     help="Interpreter threads" + (", one or more to compare (e.g. 1,2,4)" if multi_threads else "")
                          + f". Default: {threads_default}."),
        click.option("--accelerator", type=click.Choice([a.value for a in Accelerator]), default="cpu", show_default=True,
                     help="cpu: XNNPACK; gpu: the runtime's GPU path, falling back to CPU; auto: a hardware GPU only, "
                          "if it runs the whole model faster than the CPU in a short trial."),
        click.option("--no-fallback", is_flag=True, help="With --accelerator gpu: fail instead of falling back to CPU."),
        click.option("--gpu-delegate", metavar="PATH", default=None,
                     help="GPU delegate library for load_delegate (or $KERAS_EDGE_GPU_DELEGATE)."),
        click.option("--gpu-timeout", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S, show_default=True,
                     metavar="SECONDS",
                     help="Time limit for the GPU compile and first run, tried in a child process (0: in this process, no limit)."),
    )


ssh_options = _stack(
    click.option("--ssh-config", "-F", type=click.Path(path_type=Path),
                 help="ssh config file to use instead of ~/.ssh/config (as `ssh -F`)."),
    click.option("--ssh-option", "ssh_option", multiple=True, metavar="KEY=VALUE",
                 help="Extra `ssh -o` option, repeatable (e.g. --ssh-option Port=2222). Yours win over the defaults."),
    click.option("--connect-timeout", default=10, show_default=True, type=click.IntRange(min=1), metavar="SECONDS",
                 help="Give up on a board that does not answer within this time."),
)


def preprocess_options(f: F) -> F:
    """How images become the model's input: shared by convert and prune, resolved by one library function."""
    from keras_edge.device.contract import PRESETS, ColorOrder, Interpolation, ResizeMode
    from keras_edge.device.contract.preprocess import presets_text

    return _stack(
        click.option("--preprocess", "preset", type=click.Choice(list(PRESETS)),
                     help=f"Normalisation of a pixel x in 0..255 (keras.applications modes): {presets_text()}. "
                          "Default: raw when the model starts with a Rescaling/Normalization layer, else required."),
        click.option("--scale", type=float, help="Explicit normalisation: (pixel*scale - mean)/std."),
        click.option("--mean", callback=floats, help="Comma-separated per-channel mean (after scale)."),
        click.option("--std", callback=floats, help="Comma-separated per-channel std (after scale)."),
        click.option("--resize", type=click.Choice([m.value for m in ResizeMode]), default="stretch", show_default=True),
        click.option("--interpolation", type=click.Choice([m.value for m in Interpolation]), default="bilinear",
                     show_default=True),
        click.option("--color", type=click.Choice([ColorOrder.RGB.value, ColorOrder.BGR.value]),
                     help="Channel order the model expects."),
        click.option("--input-shape", callback=named_shapes_option, multiple=True, metavar="[NAME=]H,W,C",
                     help="Input size when the model's is not fixed; with several inputs, NAME=H,W,C once per input."),
    )(f)


def preprocess_config(kw: dict[str, Any]) -> Any:
    """Pop the preprocess options out of a command's keyword arguments into a PreprocessOptions."""
    from keras_edge.host.preprocessing import PreprocessOptions

    names = ("preset", "scale", "mean", "std", "resize", "interpolation", "color")
    shapes = kw.pop("input_shape") or ()
    if len(shapes) == 1 and shapes[0][0] is None:
        return PreprocessOptions(**{n: kw.pop(n) for n in names}, input_shape=shapes[0][1])
    if any(name is None for name, _ in shapes):
        raise click.BadParameter("give every --input-shape an input name (NAME=H,W,C) when there are several",
                                 param_hint="'--input-shape'")
    return PreprocessOptions(**{n: kw.pop(n) for n in names}, input_shapes=tuple(shapes))


TASK_FIELDS = ("task", "head", "anchors", "references", "box_units", "scores", "objectness", "score_threshold",
               "iou_threshold", "max_detections")


def task_options(f: F) -> F:
    """What the outputs mean (--task, --head and its settings, thresholds): shared by convert and run."""
    from keras_edge.device.contract import BoxUnits, ScoreKind
    from keras_edge.device.outputs import HEADS
    from keras_edge.device.outputs import TASK_CHOICES

    heads = "; ".join(f"{name}: {h.summary}" for name, h in HEADS.items())
    return _stack(
        click.option("--task", type=click.Choice(TASK_CHOICES), default=None,
                     help="What the outputs mean. Default (auto): a bundle's manifest says; otherwise classifier-shaped "
                          "outputs are classification, a --head means detection, and other outputs are reported raw."),
        click.option("--head", type=click.Choice(list(HEADS)), default=None, help=f"Detection head. {heads}."),
        click.option("--anchors", type=click.Path(path_type=Path), default=None, metavar="FILE.npy",
                     help="Anchors (A,4) [cy,cx,h,w] normalised, for a head that decodes against anchors (ssd); "
                          "convert copies them into the bundle."),
        click.option("--references", type=click.Path(path_type=Path), default=None, metavar="FILE.npz",
                     help="Reference embeddings (name → vector, numpy.savez) for --task embedding: each input's best "
                          "cosine matches; convert copies them into the bundle."),
        click.option("--box-units", type=click.Choice([u.value for u in BoxUnits]), default=None,
                     help="Units of the head's boxes: fractions of the model input, or its pixels (default: normalized)."),
        click.option("--scores", type=click.Choice([k.value for k in ScoreKind]), default=None,
                     help="Whether scores are already in [0,1] or need a sigmoid/softmax (default: probabilities)."),
        click.option("--objectness", is_flag=True, help="yolo: a 5th column (objectness) multiplies the class scores."),
        click.option("--score-threshold", type=float, default=None,
                     help="Drop detections scored below this (default 0.25; a bundle's own otherwise)."),
        click.option("--iou-threshold", type=float, default=None,
                     help="Overlap above which non-maximum suppression drops a box (default 0.45)."),
        click.option("--max-detections", type=int, default=None, help="Most detections kept per input (default 100)."),
    )(f)


def task_config(kw: dict[str, Any]) -> Any:
    """Pop the task options out of a command's keyword arguments into one TaskOptions."""
    from keras_edge.device.outputs import TaskOptions

    return TaskOptions(**{n: kw.pop(n) for n in TASK_FIELDS})
