"""The `keras-edge` command line: one registry for the whole product, loaded lazily.

Commands are registered by dotted path and imported only when invoked, so `keras-edge --help` and
every board command start without TensorFlow. Board commands (run, verify, bench, doctor) live in
:mod:`keras_edge.commands.board`; workstation commands in each room of ``keras_edge.host``. This module
is above both layers: ``device/`` never names it, nor anything of ``host/``.
"""

from __future__ import annotations

import difflib
import errno
import importlib
import json
import sys

import click

from keras_edge import __version__
from keras_edge.device.contract import ConfigError, EdgeError


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
    "serve": Command("keras_edge.commands.serve", "serve",
                     "Serve a bundle over HTTP: a live page, /infer and /metrics.", False),
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

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-") and not ctx.resilient_parsing:
            close = difflib.get_close_matches(name, list(COMMANDS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else f"; the commands are {', '.join(sorted(COMMANDS))}"
            raise click.UsageError(f"no such command {name!r}{hint}", ctx=ctx)
        return super().resolve_command(ctx, args)

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


def wants_json(argv: list[str]) -> bool:
    """Whether the command being run was given its ``--json`` flag (before any ``--``)."""
    args = argv[:argv.index("--")] if "--" in argv else argv
    params = getattr(LazyGroup.resolved, "params", [])
    return "--json" in args and any("--json" in getattr(p, "opts", ()) for p in params)


def fail(message: str, code: int, argv: list[str]) -> int:
    """One `error:` line on stderr; with --json also {"error", "exit_code"} on stdout, so that stdout parses."""
    click.echo(f"error: {message}", err=True)
    if wants_json(argv):
        click.echo(json.dumps({"error": message, "exit_code": code}))
    return code


def main(argv: list[str] | None = None) -> int:
    """Entry point: user-facing errors print one line and exit non-zero; bugs keep their traceback."""
    LazyGroup.resolved = None   # in-process callers (tests, the Python API) run several commands
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        rv = cli.main(args=argv, prog_name="keras-edge", standalone_mode=False)
    except ConfigError as e:
        e = e.renamed(flag_for(e.field, LazyGroup.resolved))
        return fail(str(e), e.exit_code, args)
    except EdgeError as e:
        return fail(str(e), e.exit_code, args)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.exceptions.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":   # bare `keras-edge`: the help as click prints it
            e.show()
            return e.exit_code
        return fail(usage_message(e), e.exit_code, args)
    except click.ClickException as e:
        return fail(usage_message(e), e.exit_code, args)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # every write is staged beside its target and renamed only when complete: nothing was replaced
        where = f" while writing {e.filename}" if e.filename else ""
        click.echo(f"error: the disk is full{where} ({e.strerror}); free some space and run the command again "
                   "(nothing was replaced)", err=True)
        return 2
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
