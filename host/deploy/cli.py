"""`keras-edge deploy`, `rollback` and `bench --on`: thin click fronts over :mod:`keras_edge.host.deploy`.

No TensorFlow here: these commands work in an environment without the host extra.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Sequence

import click

from keras_edge.device.errors import EdgeError

from keras_edge.board_cli import bench_options
from keras_edge.board_cli import bench as local_bench
from keras_edge.options import json_option, ssh_options

from .core import DeployConfig, HostResult, Outcome, Transport
from .ssh import SshOptions


def ssh_from_options(ssh_config: Path | None, ssh_option: Sequence[str], connect_timeout: int) -> SshOptions:
    return SshOptions(config=ssh_config, options=tuple(ssh_option), connect_timeout=connect_timeout)


@click.command()
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("hosts", metavar="HOST...", nargs=-1, required=True)
@click.option("--keep", default=3, show_default=True, type=click.IntRange(min=1),
              help="Versions to keep on each board (the current and previous ones are never removed).")
@click.option("--install-runner", is_flag=True,
              help="Build a wheel of keras-edge, install it with the device extra in ~/keras-edge/venv on the board, run doctor.")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --install-runner: install this keras-edge wheel instead of building one.")
@click.option("--transport", type=click.Choice([t.value for t in Transport]), default=Transport.AUTO.value,
              show_default=True, help="How to copy: rsync, tar over ssh, or rsync when both sides have it.")
@click.option("--bwlimit", type=click.IntRange(min=1), metavar="KIB/S", help="Limit rsync's bandwidth per board.")
@click.option("--jobs", "-j", default=8, show_default=True, type=click.IntRange(min=1), help="Boards deployed at once.")
@ssh_options
@json_option
def deploy(bundle_dir: Path, hosts: tuple[str, ...], keep: int, install_runner: bool, wheel: Path | None,
           transport: str, bwlimit: int | None, jobs: int, ssh_config: Path | None, ssh_option: tuple[str, ...],
           connect_timeout: int, as_json: bool) -> None:
    """Copy BUNDLE to each HOST (user@host[:port] or an ssh alias), verify it there, switch `current`.

    Safe to interrupt and to run again: the switch happens only after the board has checked the
    copy, and a redeploy of the same version sends nothing.
    """
    config = DeployConfig(bundle_dir, keep=keep, transport=Transport(transport), bwlimit_kbps=bwlimit,
                          install_runner=install_runner, wheel=wheel, jobs=jobs,
                          ssh=ssh_from_options(ssh_config, ssh_option, connect_timeout))
    from keras_edge.api import deploy as run_deploy

    _finish(run_deploy(config, hosts, on_event=_progress()), as_json, "deployed")


@click.command()
@click.argument("name")
@click.argument("hosts", metavar="HOST...", nargs=-1, required=True)
@click.option("--jobs", "-j", default=8, show_default=True, type=click.IntRange(min=1), help="Boards handled at once.")
@ssh_options
@json_option
def rollback(name: str, hosts: tuple[str, ...], jobs: int, ssh_config: Path | None, ssh_option: tuple[str, ...],
             connect_timeout: int, as_json: bool) -> None:
    """Switch bundle NAME on each HOST back to its previous version (verified there first)."""
    ssh = ssh_from_options(ssh_config, ssh_option, connect_timeout)
    from keras_edge.api import rollback as run_rollback

    _finish(run_rollback(name, hosts, ssh, jobs=jobs, on_event=_progress()), as_json, "rolled back")


def _progress() -> Callable[[str, str], None]:
    lock = threading.Lock()

    def say(host: str, line: str) -> None:
        with lock:  # parallel boards: whole lines, never interleaved halves
            click.echo(f"[{host}] {line}", err=True)
    return say


def _finish(results: list[HostResult], as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        click.echo(render_table(results))
    failed = [r.host for r in results if not r.ok]
    if failed:
        others = len(results) - len(failed)
        raise EdgeError(f"{len(failed)} of {len(results)} boards failed: {', '.join(failed)}",
                        f"the table above says why; the rest were {verb}" if others else "the table above says why")


def render_table(results: list[HostResult]) -> str:
    """The summary: one row per board, errors in the last column."""
    head = ("host", "result", "version", "previous", "sent", "verified", "time", "board / error")
    rows = [head] + [(r.host, str(r.outcome) if r.ok else "FAILED", (r.ok and r.version) or "-", r.previous or "-",
                      _sent(r) if r.ok and r.outcome is not Outcome.ROLLED_BACK else "-", r.verified_by or "-", f"{r.seconds:.1f}s",
                      r.error if not r.ok else "; ".join(p for p in (r.board, r.runtime) if p))
                     for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in rows)


def _sent(r: HostResult) -> str:
    if not r.files_sent:
        return "nothing"
    size, units = float(r.bytes_sent), ["B", "KiB", "MiB", "GiB"]
    while size >= 1024 and len(units) > 1:
        size, units = size / 1024, units[1:]
    return f"{r.files_sent} files, {size:.0f} B" if units[0] == "B" else f"{r.files_sent} files, {size:.1f} {units[0]}"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@bench_options
@click.option("--on", "hosts", multiple=True, metavar="HOST",
              help="Run the benchmark on a board over ssh (the bundle must be deployed there) and store it in the report.")
@ssh_options
@click.pass_context
def bench(ctx: click.Context, hosts: tuple[str, ...], ssh_config: Path | None, ssh_option: tuple[str, ...],
          connect_timeout: int, **kw) -> int:
    """Benchmark TARGET's variants: init, first inference, median/p90/p99 invoke, RSS, size (here, or --on boards)."""
    if not hosts:
        given = [p for p in ("ssh_config", "ssh_option") if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} only applies with --on HOST")
        return ctx.invoke(local_bench, **kw)
    return _bench_on(hosts, ssh_from_options(ssh_config, ssh_option, connect_timeout), **kw)


def _bench_on(hosts: tuple[str, ...], ssh: SshOptions, *, target, variants, runs, warmup, min_seconds, threads,
              as_json, out, e2e, preprocess, input_shape, accelerator, no_fallback, gpu_delegate, gpu_timeout) -> int:
    from keras_edge.device import render
    from keras_edge.device.bench import BenchReport, write_json

    from .remote import remote_bench

    unsupported = [f for f, v in (("--e2e", e2e), ("--preprocess", preprocess), ("--input-shape", input_shape),
                                  ("--gpu-delegate", gpu_delegate)) if v]
    if unsupported:
        raise click.UsageError(f"{unsupported[0]} is not passed to boards by --on; run `keras-edge bench` on the board for it")
    passthru = [*(["--variant", variants] if variants else []), "--runs", str(runs), "--warmup", str(warmup),
                "--min-seconds", str(min_seconds), *(["--threads", ",".join(map(str, threads))] if threads else []),
                "--accelerator", accelerator, *(["--no-fallback"] if no_fallback else []),
                *(["--gpu-timeout", str(gpu_timeout)] if accelerator != "cpu" else [])]
    runs_done = []
    for host in hosts:
        run = remote_bench(target, host, passthru, ssh=ssh)
        runs_done.append(run.to_dict())
        if as_json:
            click.echo(json.dumps(run.to_dict(), default=str))
            continue
        click.echo(f"board {run.fingerprint} ({host}), bundle version {run.version}:")
        for line in render.bench_table(BenchReport.from_dict(run.bench)):
            click.echo(line)
    if out:
        write_json(out, {"boards": runs_done})
    if not as_json:
        click.echo(f"stored in {target}/report.json under boards; `keras-edge report {target}` shows them side by side")
    return 0
