"""`keras-edge deploy`, `rollback` and `bench --on`: thin click fronts over :mod:`keras_edge.host.deploy`.

No TensorFlow here: these commands work in an environment without the host extra.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Callable, Sequence

import click

from keras_edge.device.contract import EdgeError

from keras_edge.commands.board import bench_options
from keras_edge.commands.board import bench as local_bench
from keras_edge.options import json_flag, ssh_options

from keras_edge.host.deploy.core import DeployConfig, HostResult, Outcome, Transport
from keras_edge.host.deploy.ssh import SshOptions


def ssh_from_options(ssh_config: Path | None, ssh_option: Sequence[str], connect_timeout: int) -> SshOptions:
    return SshOptions(config=ssh_config, options=tuple(ssh_option), connect_timeout=connect_timeout)


inventory_option = click.option("--inventory", "-i", type=click.Path(path_type=Path), metavar="INVENTORY",
                                help="Act on the boards of an Ansible inventory (needs ansible-core: the `fleet` extra).")
limit_option = click.option("--limit", "-l", metavar="PATTERN", help="With --inventory: only the hosts this Ansible pattern matches.")
forks_option = click.option("--forks", default=16, show_default=True, type=int,
                            help="With --inventory: boards Ansible works on at once.")
FLEET_ONLY = ("limit", "serial", "forks", "max_fail_percentage", "latency_ceiling")


def _fleet_flags(ctx: click.Context, inventory: Path | None, hosts: Sequence[str], what: str = "HOST...") -> None:
    """Boards come either from the command line or from --inventory; fleet flags need --inventory."""
    if inventory is not None and hosts:
        raise click.UsageError(f"give the boards either as {what} or with --inventory, not both")
    if inventory is None:
        given = [p for p in FLEET_ONLY if p in ctx.params
                 and ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} only applies with --inventory")
        if not hosts:
            raise click.UsageError(f"Missing argument '{what}' (or --inventory INVENTORY)")


def _serve_spec(ctx: click.Context, serve: bool, host: str, port: int, camera: int | None):
    """--serve's spec, or None; its --serve-* options mean nothing without it."""
    from keras_edge.host.deploy.service import ServeSpec

    if not serve:
        given = [p for p in ("serve_host", "serve_port", "serve_camera")
                 if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} only applies with --serve")
        return None
    return ServeSpec(host=host, port=port, camera=camera)


@click.command()
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("hosts", metavar="HOST...", nargs=-1)
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
@click.option("--lock-wait", "lock_wait_s", default=120, show_default=True, type=click.IntRange(min=0), metavar="SECONDS",
              help="Wait this long for another deploy that holds a board's lock.")
@inventory_option
@limit_option
@click.option("--serial", default="25%", show_default=True, metavar="N|N%",
              help="With --inventory: after one canary board, deploy in batches of N boards or N% of them.")
@forks_option
@click.option("--max-fail-percentage", default=0, show_default=True, type=int, metavar="P",
              help="With --inventory: a batch with more than P% failed boards is rolled back and stops the rollout.")
@click.option("--latency-ceiling", type=float, metavar="FACTOR",
              help="With --inventory: the health gate also fails a board whose p50 exceeds FACTOR x the bundle's board benchmark.")
@click.option("--serve", is_flag=True,
              help="Also run `keras-edge serve` on the bundle as a systemd user unit on each board, (re)started now.")
@click.option("--serve-host", default="127.0.0.1", show_default=True, metavar="ADDRESS",
              help="With --serve: the address the board's server listens on (off loopback the board makes a token).")
@click.option("--serve-port", default=8080, show_default=True, type=int, help="With --serve: its TCP port.")
@click.option("--serve-camera", type=int, default=None, metavar="N", help="With --serve: show camera N live.")
@ssh_options
@json_flag("one pretty-printed array, one object per board (with --inventory: one document with the batches)")
@click.pass_context
def deploy(ctx: click.Context, bundle_dir: Path, hosts: tuple[str, ...], keep: int, install_runner: bool,
           wheel: Path | None, transport: str, bwlimit: int | None, jobs: int, lock_wait_s: int,
           inventory: Path | None, limit: str | None, serial: str, forks: int, max_fail_percentage: int,
           latency_ceiling: float | None, serve: bool, serve_host: str, serve_port: int, serve_camera: int | None,
           ssh_config: Path | None, ssh_option: tuple[str, ...], connect_timeout: int, as_json: bool) -> None:
    """Copy BUNDLE to each HOST (user@host[:port] or an ssh alias), verify it there, switch `current`.

    Safe to interrupt and to run again: the switch happens only after the board has checked the
    copy, and a redeploy of the same version sends nothing. With --inventory, a staged rollout
    through Ansible: a canary board, then batches of --serial, each behind a health gate; a
    failing batch is switched back and the rollout stops.
    """
    _fleet_flags(ctx, inventory, hosts)
    ssh = ssh_from_options(ssh_config, ssh_option, connect_timeout)
    serving = _serve_spec(ctx, serve, serve_host, serve_port, serve_camera)
    if inventory is not None:
        from keras_edge.host.deploy.fleet import FleetConfig, Inventory, deploy_fleet

        config = FleetConfig(bundle_dir, Inventory(inventory, limit, forks, ssh), serial=serial,
                             max_fail_percentage=max_fail_percentage, keep=keep, latency_ceiling=latency_ceiling,
                             lock_wait_s=lock_wait_s, serve=serving)
        _finish_fleet(deploy_fleet(config, on_line=_ansible_line), as_json)
        return
    config = DeployConfig(bundle_dir, keep=keep, transport=Transport(transport), bwlimit_kbps=bwlimit,
                          install_runner=install_runner, wheel=wheel, jobs=jobs, lock_wait_s=lock_wait_s, ssh=ssh,
                          serve=serving)
    from keras_edge.api import deploy as run_deploy

    _finish(run_deploy(config, hosts, on_event=_progress()), as_json, "deployed")


@click.command()
@click.argument("name")
@click.argument("hosts", metavar="HOST...", nargs=-1)
@click.option("--jobs", "-j", default=8, show_default=True, type=click.IntRange(min=1), help="Boards handled at once.")
@inventory_option
@limit_option
@forks_option
@ssh_options
@json_flag("one pretty-printed array, one object per board")
@click.pass_context
def rollback(ctx: click.Context, name: str, hosts: tuple[str, ...], jobs: int, inventory: Path | None,
             limit: str | None, forks: int, ssh_config: Path | None, ssh_option: tuple[str, ...],
             connect_timeout: int, as_json: bool) -> None:
    """Switch bundle NAME on each HOST (or the inventory's hosts) back to its previous version (verified there first)."""
    _fleet_flags(ctx, inventory, hosts)
    ssh = ssh_from_options(ssh_config, ssh_option, connect_timeout)
    if inventory is not None:
        from keras_edge.host.deploy.fleet import Inventory, rollback_fleet

        run = rollback_fleet(name, Inventory(inventory, limit, forks, ssh), on_line=_ansible_line)
        _finish(run.results, as_json, "rolled back")
        return
    from keras_edge.api import rollback as run_rollback

    _finish(run_rollback(name, hosts, ssh, jobs=jobs, on_event=_progress()), as_json, "rolled back")


def _ansible_line(line: str) -> None:
    click.echo(f"[ansible] {line}", err=True)


def _finish_fleet(run, as_json: bool) -> None:
    """The rollout's summary (table or JSON), then one error line when it did not complete."""
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
    else:
        click.echo(render_table(run.results, batches=True))
    failed = [r for r in run.results if r.outcome is Outcome.FAILED]
    rolled = [r.host for r in run.results if r.outcome is Outcome.ROLLED_BACK]
    skipped = [r.host for r in run.results if r.outcome is Outcome.SKIPPED]
    done = len(run.results) - len(failed) - len(rolled) - len(skipped)
    if run.stopped:
        batch = max(r.batch for r in failed) if failed else len(run.batches)
        raise EdgeError(f"rollout stopped at batch {batch} of {run.planned or len(run.batches)}: "
                        f"{', '.join(f'{r.host} ({r.error})' for r in failed if r.batch == batch)}; "
                        f"{len(rolled)} boards rolled back, {len(skipped)} untouched, {done} on the new version",
                        "the table above says why; fix the failing boards and deploy again")
    if failed or skipped:
        raise EdgeError(f"{len(failed) + len(skipped)} of {len(run.results)} boards failed: "
                        f"{', '.join(r.host for r in failed + [r for r in run.results if r.outcome is Outcome.SKIPPED])}",
                        f"the table above says why; the rest ({done}) were deployed")


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


def render_table(results: list[HostResult], batches: bool = False) -> str:
    """The summary: one row per board, errors in the last column (a staged rollout: batch, health, why)."""
    if batches:
        head = ("host", "batch", "result", "version", "previous", "verified", "health / why")
        rows = [head] + [(r.host, str(r.batch or "-"), str(r.outcome) if r.ok else "FAILED",
                          r.version if r.outcome not in (Outcome.SKIPPED, Outcome.FAILED) else "-", r.previous or "-",
                          r.verified_by or "-", r.error or r.runtime or "-") for r in results]
    else:
        head = ("host", "result", "version", "previous", "sent", "verified", "time", "board / error")
        rows = [head] + [(r.host, str(r.outcome) if r.ok else "FAILED", (r.ok and r.version) or "-", r.previous or "-",
                          _sent(r) if r.ok and r.outcome is not Outcome.ROLLED_BACK else "-", r.verified_by or "-",
                          f"{r.seconds:.1f}s", r.error if not r.ok else "; ".join(p for p in (r.board, r.runtime) if p))
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
@inventory_option
@forks_option
@ssh_options
@click.pass_context
def bench(ctx: click.Context, hosts: tuple[str, ...], inventory: Path | None, forks: int, ssh_config: Path | None,
          ssh_option: tuple[str, ...], connect_timeout: int, **kw) -> int:
    """Benchmark TARGET's variants: init, first inference, median/p90/p99 invoke, RSS, size (here, or --on boards).

    With --inventory, --on names an Ansible group or pattern: every board of it runs the benchmark,
    and the report aggregates them per board kind (median and spread of p50).
    """
    if not hosts:
        given = [p for p in ("ssh_config", "ssh_option", "inventory")
                 if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
        if given:
            raise click.UsageError(f"--{given[0].replace('_', '-')} only applies with --on HOST")
        return ctx.invoke(local_bench, **kw)
    ssh = ssh_from_options(ssh_config, ssh_option, connect_timeout)
    fleet = None
    if inventory is not None:
        from keras_edge.host.deploy.fleet import Inventory

        fleet = Inventory(inventory, None, forks, ssh)
    return _bench_on(hosts, ssh, fleet=fleet, **kw)


def _bench_on(hosts: tuple[str, ...], ssh: SshOptions, *, target, variants, runs, warmup, min_seconds, threads,
              as_json, out, e2e, preprocess, input_shape, accelerator, no_fallback, gpu_delegate, gpu_timeout,
              fleet=None) -> int:
    from keras_edge import render
    from keras_edge.device.bench import BenchReport, write_json

    from keras_edge.host.deploy.remote import remote_bench

    unsupported = [f for f, v in (("--e2e", e2e), ("--preprocess", preprocess), ("--input-shape", input_shape),
                                  ("--gpu-delegate", gpu_delegate)) if v]
    if unsupported:
        raise click.UsageError(f"{unsupported[0]} is not passed to boards by --on; run `keras-edge bench` on the board for it")
    passthru = [*(["--variant", variants] if variants else []), "--runs", str(runs), "--warmup", str(warmup),
                "--min-seconds", str(min_seconds), *(["--threads", ",".join(map(str, threads))] if threads else []),
                "--accelerator", accelerator, *(["--no-fallback"] if no_fallback else []),
                *(["--gpu-timeout", str(gpu_timeout)] if accelerator != "cpu" else [])]
    if fleet is not None:
        return _bench_fleet(target, fleet, ":".join(hosts), passthru, as_json, out)
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


def _bench_fleet(target, fleet, group: str, passthru: list[str], as_json: bool, out) -> int:
    from keras_edge.device.bench import write_json

    from keras_edge.host.report.contract import read_report
    from keras_edge.host.deploy.fleet import bench_fleet

    runs, failures = bench_fleet(target, fleet, group, passthru, on_line=_ansible_line)
    report = read_report(target)
    kinds = report.fleet() if report else {}
    if out:
        write_json(out, {"boards": [r.to_dict() for r in runs], "fleet": kinds})
    if as_json:
        click.echo(json.dumps({"boards": [r.to_dict() for r in runs], "fleet": kinds,
                               "failed": [f.to_dict() for f in failures]}, default=str))
    else:
        for kind, agg in kinds.items():
            click.echo(f"{kind}: {agg['boards']} boards ({', '.join(agg['hosts'])})")
            for variant, s in agg["variants"].items():
                click.echo(f"  {variant}: p50 median {s['median_p50_ms']:.3f} ms over {s['boards']} boards, "
                           f"min {s['min_p50_ms']:.3f}, max {s['max_p50_ms']:.3f} (spread {s['spread_pct']}%)")
        click.echo(f"stored in {target}/report.json under boards (one per host) and fleet (per board kind)")
    if failures:
        raise EdgeError(f"{len(failures)} of {len(failures) + len(runs)} boards failed: "
                        + "; ".join(f"{f.host}: {f.error}" for f in failures))
    return 0
