"""The `keras-edge` command line: a thin, lazily loaded front over the library.

Commands are registered by dotted path and imported only when invoked, so `keras-edge --help` and
every board command start without TensorFlow. Host commands live in ``keras_edge.host`` and need
the ``host`` extra; on a board they say so in one line.
"""

from __future__ import annotations

import importlib
import sys

import click

from .errors import EdgeError

# name → (module, attribute, one-line help, needs the host extra)
COMMANDS: dict[str, tuple[str, str, str, bool]] = {
    "convert": ("keras_edge.host.commands", "convert", "Convert a Keras model into a bundle of TFLite variants.", True),
    "report": ("keras_edge.host.commands", "report", "Regenerate a bundle's report (report.md/.json/.png).", True),
    "prune": ("keras_edge.host.prune_cli", "prune", "Prune a Keras model (magnitude or channels).", True),
    "distill": ("keras_edge.host.prune_cli", "distill", "Distill a teacher model into a student.", True),
    "deploy": ("keras_edge.host.deploy_cli", "deploy", "Copy a bundle to boards over SSH, verified and atomic.", False),
    "rollback": ("keras_edge.host.deploy_cli", "rollback", "Switch a board's bundle back to the previous version.", False),
    "run": ("keras_edge.device.run_cli", "run", "Run a bundle or .tflite on images, folders, video or a camera.", False),
    "verify": ("keras_edge.device.run_cli", "verify", "Check a bundle's checksums and reference outputs.", False),
    "bench": ("keras_edge.device.run_cli", "bench", "Benchmark a bundle's variants or a .tflite file.", False),
    "doctor": ("keras_edge.device.run_cli", "doctor", "Show runtimes, CPU features and accelerators found here.", False),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _, needs_host = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] in ("tensorflow", "keras") and needs_host:
                raise EdgeError(f"`keras-edge {name}` runs on the workstation and needs TensorFlow, which is not installed",
                                "install it with: pip install 'keras-edge[host]'") from None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # help text comes from the table so that `--help` imports nothing
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="keras-edge")
def cli() -> None:
    """keras-edge: Keras models to fast TFLite/LiteRT bundles on ARM boards."""


def main(argv: list[str] | None = None) -> int:
    """Entry point: user-facing errors print one line and exit non-zero; bugs keep their traceback."""
    try:
        rv = cli.main(args=argv, prog_name="keras-edge", standalone_mode=False)
    except EdgeError as e:
        click.echo(f"error: {e}", err=True)
        return e.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
