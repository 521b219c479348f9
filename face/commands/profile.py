"""`keras-edge profile`: a per-op table of a bundle's variant or a .tflite, here or on boards (``--on``).

No TensorFlow: the profile needs only the device dependencies; ``--plot`` needs matplotlib, ``--on`` OpenSSH.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_edge.options import json_option, out_option, ssh_options, threads_one


def _plot(profile, path: Path | None) -> None:
    if path is None:
        return
    from keras_edge.device.contract.errors import EdgeError
    from keras_edge.device.profile.text import plot

    try:
        click.echo(f"plot: {plot(profile, path)}", err=True)
    except EdgeError as e:   # the table is the result; a missing plotting library is one line, not a failure
        click.echo(f"plot: not drawn: {e}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", type=click.Path())
@click.option("--variant", default=None, help="The bundle's variant to profile (default: its default).")
@click.option("--threads", callback=threads_one, metavar="N", help="Interpreter threads (default: every core).")
@click.option("--passes", default=20, show_default=True, type=click.IntRange(min=3),
              help="Timed passes at least (each: the whole model, then every op once, in order).")
@click.option("--min-seconds", default=2.0, show_default=True, type=click.FloatRange(min=0),
              help="Keep timing passes at least this long.")
@click.option("--no-times", is_flag=True, help="Only the op table and the XNNPACK column, nothing timed.")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N", help="Show the N slowest ops only.")
@click.option("--plot", "plot_path", type=click.Path(path_type=Path), default=None, metavar="PNG",
              help="Also draw the slowest ops as a bar chart coloured by XNNPACK (needs matplotlib).")
@click.option("--on", "hosts", multiple=True, metavar="HOST",
              help="Profile on a board over ssh (the bundle must be deployed there) and keep it in the report.")
@json_option
@out_option("Also write the JSON profile to FILE.", required=False)
@ssh_options
@click.pass_context
def profile(ctx: click.Context, target: str, variant: str | None, threads: int | None, passes: int, min_seconds: float,
            no_times: bool, top: int | None, plot_path: Path | None, hosts: tuple[str, ...], as_json: bool,
            out: Path | None, ssh_config: Path | None, ssh_option: tuple[str, ...], connect_timeout: int) -> int:
    """Profile TARGET op by op: type, shapes, time, share, and whether XNNPACK runs it (and why not).

    Each op is cut out of the model and timed alone on the kernels the whole model uses for it, side by
    side with the whole model; the summary says how close the ops' sum came to the whole.
    """
    from keras_edge.device.bench.measure import write_json
    from keras_edge.device.profile.text import table

    if hosts:
        return _profile_on(hosts, target, variant, threads, passes, min_seconds, no_times, top, plot_path, as_json,
                           out, ssh_config, ssh_option, connect_timeout)
    given = [p for p in ("ssh_config", "ssh_option") if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
    if given:
        raise click.UsageError(f"--{given[0].replace('_', '-')} only applies with --on HOST")
    from keras_edge.api import profile as run_profile
    from keras_edge.device.profile import ProfileConfig

    cfg = ProfileConfig(target=target, variant=variant, threads=threads, passes=passes, min_seconds=min_seconds,
                        times=not no_times)
    result = run_profile(cfg, progress=lambda s: click.echo(f"{s} …", err=True))
    if out:
        write_json(out, result.to_dict())
    click.echo(json.dumps(result.to_dict()) if as_json else "\n".join(table(result, top)))
    _plot(result, plot_path)
    return 0


def _profile_on(hosts, target, variant, threads, passes, min_seconds, no_times, top, plot_path, as_json, out,
                ssh_config, ssh_option, connect_timeout) -> int:
    from keras_edge.device.bench.measure import write_json
    from keras_edge.device.profile.text import table

    from keras_edge.commands.deploy import ssh_from_options
    from keras_edge.host.deploy.remote import remote_profile

    if not Path(target, "manifest.json").is_file():
        raise click.UsageError("--on needs a bundle directory (deployed to the board), not a single model file")
    passthru = [*(["--variant", variant] if variant else []), *(["--threads", str(threads)] if threads else []),
                "--passes", str(passes), "--min-seconds", str(min_seconds), *(["--no-times"] if no_times else [])]
    ssh = ssh_from_options(ssh_config, ssh_option, connect_timeout)
    runs = []
    for host in hosts:
        run = remote_profile(target, host, passthru, ssh=ssh)
        runs.append(run.to_dict())
        if as_json:
            click.echo(json.dumps(run.to_dict()))
            continue
        click.echo(f"board {run.fingerprint} ({host}), bundle version {run.version}:")
        result = run.profile()
        click.echo("\n".join(table(result, top)))
        _plot(result, plot_path.with_name(f"{plot_path.stem}-{host.replace('@', '_').replace(':', '_')}{plot_path.suffix}")
              if plot_path and len(hosts) > 1 else plot_path)
    if out:
        write_json(out, {"profiles": runs})
    if not as_json:
        click.echo(f"stored in {target}/report.json under profiles (one per board kind and variant)")
    return 0
