"""Board commands: ``run``, ``verify``, ``bench``, ``doctor``. Parse → config → one library call → render."""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

from .engine import Accelerator, EngineOptions
from .gpu import DEFAULT_TIMEOUT_S as GPU_TIMEOUT
from .errors import DataError
from .pipeline import DecodePolicy
from .preprocess import PRESETS


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise DataError(f"{what} {text!r} is not a list of integers", "write it like 224,224,3") from None


def _shape(text: str | None) -> tuple[tuple[int, ...] | None, ...]:
    dims = _ints(text, "--input-shape")
    return ((1, *dims),) if dims else ()


def _engine_options(f):
    """Options every command that loads a model shares."""
    for deco in reversed([
        click.option("--threads", default=None, help="Interpreter threads (bench: a list, e.g. 1,2,4). Default: all cores."),
        click.option("--accelerator", type=click.Choice([a.value for a in Accelerator]), default="cpu", show_default=True,
                     help="cpu: XNNPACK; gpu: the runtime's GPU path, falling back to CPU; auto: a hardware GPU only, "
                          "if it runs the whole model faster than the CPU in a short trial."),
        click.option("--no-fallback", is_flag=True, help="With --accelerator gpu: fail instead of falling back to CPU."),
        click.option("--gpu-delegate", metavar="PATH", default=None,
                     help="GPU delegate library for load_delegate (or $KERAS_EDGE_GPU_DELEGATE)."),
        click.option("--gpu-timeout", type=float, default=GPU_TIMEOUT, show_default=True, metavar="SECONDS",
                     help="Time limit for the GPU compile and first run, tried in a child process (0: in this process, no limit)."),
    ]):
        f = deco(f)
    return f


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=str))


def _note(text: str) -> None:
    click.echo(f"note: {text}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", type=click.Path())
@click.argument("sources", nargs=-1, type=click.Path())
@click.option("--variant", default=None, help="Bundle variant (default: the manifest's default).")
@click.option("--top-k", default=5, show_default=True, type=int, help="Classes to show per input.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout.")
@click.option("--camera", type=int, default=None, metavar="N", help="Also read camera N (/dev/videoN).")
@click.option("--max-frames", type=int, default=None, help="Stop each video/camera stream after N frames.")
@click.option("--save-outputs", type=click.Path(), default=None, metavar="DIR", help="Save raw outputs as .npy files.")
@click.option("--labels", type=click.Path(), default=None, help="Labels file for a bare .tflite (one per line).")
@click.option("--preprocess", type=click.Choice(sorted(PRESETS)), default=None,
              help="Normalisation for a bare .tflite (bundles carry their own).")
@click.option("--input-shape", default=None, metavar="H,W,C", help="Size for a model with dynamic input dimensions.")
@click.option("--decode", type=click.Choice([d.value for d in DecodePolicy]), default="auto", show_default=True,
              help="Reduced JPEG decoding: auto uses it only if the input stays within tolerance.")
@_engine_options
def run(target, sources, variant, top_k, as_json, camera, max_frames, save_outputs, labels, preprocess, input_shape,
        decode, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Run TARGET (bundle directory or .tflite) on SOURCE images, folders, videos or .npy/.npz files."""
    from . import render
    from .run import RunConfig, open_runner
    from .run import run as run_all

    eng = EngineOptions(threads=_ints(threads, "--threads")[0] if threads else None, accelerator=accelerator,
                        fallback=not no_fallback, gpu_delegate=gpu_delegate, input_shapes=_shape(input_shape),
                        gpu_timeout=gpu_timeout)
    cfg = RunConfig(target=target, sources=tuple(sources), camera=camera, variant=variant, top_k=top_k, engine=eng,
                    save_outputs=save_outputs, labels=labels, preprocess=preprocess, decode=decode, max_frames=max_frames)
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_engine_options
def verify(bundle, variant, as_json, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Check BUNDLE's checksums and run reference.npz through each variant against its tolerance."""
    from . import render
    from .verify import verify_bundle

    eng = EngineOptions(threads=_ints(threads, "--threads")[0] if threads else None, accelerator=accelerator,
                        fallback=not no_fallback, gpu_delegate=gpu_delegate, gpu_timeout=gpu_timeout)
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


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", type=click.Path())
@click.option("--variant", default=None, help="'all', a variant, or a comma-separated list (default: the default).")
@click.option("--runs", default=50, show_default=True, type=int, help="Timed invocations (at least).")
@click.option("--warmup", default=5, show_default=True, type=int, help="Untimed invocations first.")
@click.option("--min-seconds", default=1.0, show_default=True, type=float, help="Keep timing at least this long.")
@click.option("--e2e", type=click.Path(), default=None, metavar="IMAGE", help="Also time decode + preprocess + inference.")
@click.option("--preprocess", type=click.Choice(sorted(PRESETS)), default=None, help="Normalisation for a bare .tflite.")
@click.option("--input-shape", default=None, metavar="H,W,C", help="Size for a model with dynamic input dimensions.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--output", type=click.Path(), default=None, metavar="FILE", help="Also write the JSON results to FILE.")
@click.option("--on", "hosts", multiple=True, metavar="HOST",
              help="Run the benchmark on a board over ssh (the bundle must be deployed there) and store it in the report.")
@click.option("-F", "--ssh-config", type=click.Path(), default=None, help="With --on: ssh config file.")
@click.option("-o", "--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE", help="With --on: extra ssh -o option.")
@_engine_options
def bench(target, variant, runs, warmup, min_seconds, e2e, preprocess, input_shape, as_json, output, hosts,
          ssh_config, ssh_options, threads, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    """Benchmark TARGET's variants: init, first inference, median/p90/p99 invoke, RSS, size."""
    from . import render
    from .bench import BenchConfig, BenchReport, write_json
    from .bench import bench as measure

    if hosts:
        passthru = [*(["--variant", variant] if variant else []), "--runs", str(runs), "--warmup", str(warmup),
                    "--min-seconds", str(min_seconds), *(["--threads", threads] if threads else [])]
        # Remote benchmarking is a workstation feature over ssh (no TensorFlow), loaded by name like cli.COMMANDS.
        deploy = importlib.import_module("keras_edge.host.deploy")
        ssh = importlib.import_module("keras_edge.host.ssh").SshOptions(config=ssh_config, options=ssh_options)
        for host in hosts:
            entry = deploy.remote_bench(target, host, passthru, ssh=ssh)
            if as_json:
                _echo_json(entry)
                continue
            click.echo(f"board {entry['fingerprint']} ({host}), bundle version {entry['version']}:")
            for line in render.bench_table(BenchReport.from_dict(entry["bench"])):
                click.echo(line)
        if not as_json:
            click.echo(f"stored in {target}/report.json under boards; `keras-edge report {target}` shows them side by side")
        return 0

    cfg = BenchConfig(target=target, variants=variant, runs=runs, warmup=warmup, min_seconds=min_seconds,
                      threads=_ints(threads, "--threads") or (), e2e=e2e, accelerator=accelerator,
                      fallback=not no_fallback, gpu_delegate=gpu_delegate, preprocess=preprocess, gpu_timeout=gpu_timeout,
                      input_shape=_ints(input_shape, "--input-shape") and (1, *_ints(input_shape, "--input-shape")))
    rep = measure(cfg, progress=lambda s: click.echo(f"measuring {s} …", err=True))
    data = rep.to_dict()
    if output:
        write_json(output, data)
    if as_json:
        _echo_json(data)
    else:
        for line in render.bench_table(rep):
            click.echo(line)
    return 0


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--gpu-delegate", metavar="PATH", default=None, help="GPU delegate library to try.")
@click.option("--gpu-timeout", type=float, default=GPU_TIMEOUT, show_default=True, metavar="SECONDS",
              help="Time limit for the GPU probe (it runs in a child process).")
def doctor(as_json, gpu_delegate, gpu_timeout) -> int:
    """Show the runtimes, CPU features, cameras and accelerators found here (each one tried)."""
    from . import render
    from .doctor import diagnose

    d = diagnose(gpu_delegate, gpu_timeout)
    if as_json:
        _echo_json(d)
    else:
        for line in render.doctor_lines(d):
            click.echo(line)
    return 0 if d["selected_runtime"] else 2

