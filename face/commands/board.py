"""Board commands: ``run``, ``verify``, ``bench``, ``doctor``. Parse → config → one library call → render.

They call the device library only (no TensorFlow); ``bench --on`` (ssh to boards) wraps :func:`bench`
in :mod:`keras_edge.commands.deploy`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from keras_edge.device.contract import PRESETS, DataError
from keras_edge.device.contract.preprocess import presets_text
from keras_edge.device.engine import DEFAULT_TIMEOUT_S as GPU_TIMEOUT
from keras_edge.device.engine import EngineOptions
from keras_edge.device.inputs import DecodePolicy

from keras_edge.options import engine_options, json_flag, out_dir, out_option, shape_option, task_config, task_options


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str))


def _note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


def _shapes(dims: tuple[int, ...] | None) -> tuple[tuple[int, ...], ...]:
    return ((1, *dims),) if dims else ()
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", type=click.Path())
@click.argument("sources", nargs=-1, type=click.Path())
@click.option("--variant", default=None, help="Bundle variant (default: the manifest's default).")
@click.option("--top-k", default=5, show_default=True, type=int, help="Classes to show per input.")
@json_flag("JSON Lines, one object per input in input order (the summary line goes to stderr)")
@click.option("--camera", type=int, default=None, metavar="N", help="Also read camera N (/dev/videoN).")
@click.option("--max-frames", type=int, default=None, help="Stop each video/camera stream after N frames.")
@click.option("--save-outputs", type=click.Path(path_type=Path), default=None, metavar="DIR", callback=out_dir,
              help="Save raw outputs as .npy files (one per input and output).")
@click.option("--labels", type=click.Path(), default=None, help="Labels file for a bare .tflite (one per line).")
@click.option("--preprocess", type=click.Choice(sorted(PRESETS)), default=None,
              help=f"Normalisation for a bare .tflite (bundles carry their own), of a pixel x in 0..255: {presets_text()}.")
@click.option("--input-shape", callback=shape_option, metavar="H,W,C", help="Size for a model with dynamic input dimensions.")
@click.option("--decode", type=click.Choice([d.value for d in DecodePolicy]), default="auto", show_default=True,
              help="Reduced JPEG decoding: auto uses it only if the input stays within tolerance.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Decode/preprocess worker threads. Default: fitted with --threads to the cores.")
@click.option("--realtime", is_flag=True,
              help="Read videos at their own frame rate, like a camera: frames that cannot be processed in time are dropped.")
@click.option("--draw", type=click.Path(path_type=Path), default=None, metavar="DIR", callback=out_dir,
              help="Write annotated images (and one annotated .mp4 per video or camera) into DIR.")
@task_options
@engine_options(threads_default="fitted with --workers to the cores, the rest decode: 1 below 4 cores, else half "
                                "of them; all cores for .npy/.npz inputs (the summary line says what ran)")
def run(target, sources, variant, top_k, as_json, camera, max_frames, save_outputs, labels, preprocess, input_shape,
        decode, workers, realtime, draw, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout, **task) -> int:
    """Run TARGET (bundle directory or .tflite) on SOURCE images, folders, videos or .npy/.npz files."""
    from keras_edge import render
    from keras_edge.device.run import RunConfig, open_runner
    from keras_edge.device.run import run as run_all

    eng = EngineOptions(threads=threads, accelerator=accelerator, fallback=not no_fallback, gpu_delegate=gpu_delegate,
                        input_shapes=_shapes(input_shape), gpu_timeout=gpu_timeout)
    cfg = RunConfig(target=target, sources=tuple(sources), camera=camera, variant=variant, top_k=top_k, engine=eng,
                    save_outputs=str(save_outputs) if save_outputs else None, labels=labels, preprocess=preprocess,
                    decode=decode, max_frames=max_frames, workers=workers, realtime=realtime,
                    task_options=task_config(task), draw=str(draw) if draw else None)
    if not sources and camera is None:
        raise DataError("no SOURCE given", "give image files, folders, videos, .npy/.npz files or --camera N")
    runner = open_runner(cfg)
    shown = len(runner.notes)
    for n in runner.notes:
        _note(n)

    def emit(r) -> None:
        if as_json:
            _echo_json(r.to_dict(runner.context))
        elif r.ok:
            click.echo(render.result_line(r))
        else:
            click.echo(render.result_line(r), err=True)

    summary = run_all(cfg, emit, runner)
    for n in summary.notes[shown:]:
        _note(n)
    click.echo(render.summary_line(summary), err=as_json)
    if summary.failed == summary.inputs:
        raise DataError(f"no input could be run ({summary.failed} failed)", "see the lines above")
    return 1 if summary.failed else 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("bundle", type=click.Path())
@click.option("--variant", default=None, help="Check only these variants (comma-separated).")
@json_flag("one object on one line: every variant's check and the runtime")
@engine_options()
def verify(bundle, variant, as_json, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Check BUNDLE's checksums and run reference.npz through each variant against its tolerance."""
    from keras_edge import render
    from keras_edge.api import verify as verify_bundle

    eng = EngineOptions(threads=threads, accelerator=accelerator, fallback=not no_fallback, gpu_delegate=gpu_delegate,
                        gpu_timeout=gpu_timeout)
    rep = verify_bundle(bundle, eng, [v.strip() for v in variant.split(",")] if variant else None)
    if as_json:
        _echo_json(rep.to_dict())
    else:
        for line in render.verify_lines(rep):
            click.echo(line)
    if not rep.ok:
        click.echo(f"error: {render.verify_failure(rep)}", err=True)
        return 1
    return 0


def bench_options(f):
    """bench's own options (shared with `bench --on`, which adds the ssh ones)."""
    for deco in reversed([
        click.argument("target", type=click.Path()),
        click.option("--variant", "variants", default=None,
                     help="'all', a variant, or a comma-separated list. Default: the bundle's default variant "
                          "(the one `run` uses)."),
        click.option("--runs", default=50, show_default=True, type=click.IntRange(min=1), help="Timed invocations (at least)."),
        click.option("--warmup", default=5, show_default=True, type=click.IntRange(min=0), help="Untimed invocations first."),
        click.option("--min-seconds", default=1.0, show_default=True, type=click.FloatRange(min=0),
                     help="Keep timing at least this long."),
        click.option("--e2e", type=click.Path(), default=None, metavar="IMAGE", help="Also time decode + preprocess + inference."),
        click.option("--preprocess", type=click.Choice(sorted(PRESETS)), default=None,
                     help=f"Normalisation for a bare .tflite, of a pixel x in 0..255: {presets_text()}."),
        click.option("--input-shape", callback=shape_option, metavar="H,W,C", help="Size for a model with dynamic input dimensions."),
        json_flag("one object on one line: every measurement and the machine (with --on: one line per board)"),
        out_option("Also write the JSON results to FILE.", required=False),
        engine_options(multi_threads=True),
    ]):
        f = deco(f)
    return f


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@bench_options
def bench(target, variants, runs, warmup, min_seconds, e2e, preprocess, input_shape, as_json, out, threads,
          accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Benchmark TARGET's variants: init, first inference, median/p90/p99 invoke, RSS, size."""
    from keras_edge import render
    from keras_edge.device.bench import BenchConfig, write_json

    from keras_edge.api import bench as measure

    cfg = BenchConfig(target=target, variants=variants, runs=runs, warmup=warmup, min_seconds=min_seconds,
                      threads=threads, e2e=e2e, accelerator=accelerator, fallback=not no_fallback,
                      gpu_delegate=gpu_delegate, preprocess=preprocess, gpu_timeout=gpu_timeout,
                      input_shape=(1, *input_shape) if input_shape else None)
    rep = measure(cfg, progress=lambda s: click.echo(f"measuring {s} …", err=True))
    data = rep.to_dict()
    if out:
        write_json(out, data)
    if as_json:
        _echo_json(data)
    else:
        for line in render.bench_table(rep):
            click.echo(line)
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@json_flag("one object on one line: runtimes, system, OpenCV, cameras, GPU")
@click.option("--gpu-delegate", metavar="PATH", default=None, help="GPU delegate library to try.")
@click.option("--gpu-timeout", type=click.FloatRange(min=0), default=GPU_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Time limit for the GPU probe (it runs in a child process).")
def doctor(as_json, gpu_delegate, gpu_timeout) -> int:
    """Show the runtimes, CPU features, cameras and accelerators found here (each one tried)."""
    from keras_edge import render
    from keras_edge.device.health import diagnose

    d = diagnose(gpu_delegate, gpu_timeout)
    if as_json:
        _echo_json(d)
    else:
        for line in render.doctor_lines(d):
            click.echo(line)
    return 0 if d["selected_runtime"] else 2

