"""The `keras-edge` command line: one registry for the whole product, loaded lazily.

Commands are registered by dotted path and imported only when invoked, so `keras-edge --help` and
every board command start without TensorFlow. Board commands (run, verify, bench, doctor) live in
:mod:`keras_edge.commands.board`; workstation commands in each room of ``keras_edge.host``. This module
is above both layers: ``device/`` never names it, nor anything of ``host/``.
"""

from __future__ import annotations

import importlib
import sys

import click

from keras_edge import __version__
from keras_edge.device.contract.errors import ConfigError, EdgeError


class Command:
    """One registry entry: where the click command lives and its one-line help (shown without importing it)."""

    def __init__(self, module: str, attr: str, help: str, needs_tensorflow: bool):
        self.module, self.attr, self.help, self.needs_tensorflow = module, attr, help, needs_tensorflow


COMMANDS: dict[str, Command] = {
    "convert": Command("keras_edge.commands.convert", "convert", "Convert a Keras model into a bundle of TFLite variants.", True),
    "report": Command("keras_edge.commands.report", "report", "Regenerate a bundle's report (report.md/.json/.png).", True),
    "prune": Command("keras_edge.commands.prune", "prune", "Prune a Keras model (magnitude or channels).", True),
    "distill": Command("keras_edge.commands.prune", "distill", "Distill a teacher model into a student.", True),
    "deploy": Command("keras_edge.commands.deploy", "deploy", "Copy a bundle to boards over SSH, verified and atomic.", False),
    "rollback": Command("keras_edge.commands.deploy", "rollback", "Switch a board's bundle back to the previous version.", False),
    "run": Command("keras_edge.commands.board", "run", "Run a bundle or .tflite on images, folders, video or a camera.", False),
    "verify": Command("keras_edge.commands.board", "verify", "Check a bundle's checksums and reference outputs.", False),
    "bench": Command("keras_edge.commands.deploy", "bench",
                     "Benchmark a bundle's variants or a .tflite, here or on boards.", False),
    "profile": Command("keras_edge.commands.profile", "profile", "Per-op times of a bundle or .tflite, and what XNNPACK runs.",
                       False),
    "boards": Command("keras_edge.commands.boards", "boards", "List the board kinds convert --board predicts for.", False),
    "doctor": Command("keras_edge.commands.board", "doctor", "Show runtimes, CPU features and accelerators found here.", False),
}


class LazyGroup(click.Group):
    resolved: click.Command | None = None   # the command being run, to name flags in ConfigError messages

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        try:
            cmd = getattr(importlib.import_module(entry.module), entry.attr)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in ("tensorflow", "keras") and entry.needs_tensorflow:
                raise EdgeError(f"`keras-edge {name}` runs on the workstation and needs TensorFlow, which is not installed",
                                "install it with: pip install 'keras-edge[host]'") from None
            raise
        LazyGroup.resolved = cmd
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # help text comes from the table so that `--help` imports nothing
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name].help) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, package_name="keras-edge")
def cli() -> None:
    """keras-edge: Keras models to fast TFLite/LiteRT bundles on ARM boards."""


def flag_for(field: str, command: click.Command | None) -> str:
    """The command-line name of a configuration field: the option whose destination it is."""
    head = field.split(".")[0]
    for param in getattr(command, "params", []):
        if param.name == head:
            if isinstance(param, click.Option):
                longs = [o for o in param.opts if o.startswith("--")]
                return (longs or param.opts)[0]
            return param.human_readable_name
    return "--" + head.replace("_", "-")


def usage_message(e: click.ClickException) -> str:
    """Click's errors as one line (no usage block), pointing at the command's --help."""
    text = " ".join(e.format_message().split())
    if not isinstance(e, click.UsageError):
        return text
    ctx = e.ctx
    if ctx is not None:
        path = ctx.command_path
    elif LazyGroup.resolved is not None:
        path = f"keras-edge {LazyGroup.resolved.name}"
    else:
        path = "keras-edge"
    return f"{text} (see {path} --help)"


def main(argv: list[str] | None = None) -> int:
    """Entry point: user-facing errors print one line and exit non-zero; bugs keep their traceback."""
    LazyGroup.resolved = None   # in-process callers (tests, the Python API) run several commands
    try:
        rv = cli.main(args=argv, prog_name="keras-edge", standalone_mode=False)
    except ConfigError as e:
        e = e.renamed(flag_for(e.field, LazyGroup.resolved))
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except EdgeError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"error: {usage_message(e)}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
