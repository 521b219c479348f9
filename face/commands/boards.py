"""`keras-edge boards`: the board kinds `convert --board` knows, and refining one from boards' measurements."""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_edge.options import json_option


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--refine", "board", metavar="KIND", default=None,
              help="Refine board kind KIND on the bench --on runs stored in BUNDLE... and save it in your board table.")
@click.argument("bundles", metavar="[BUNDLE...]", nargs=-1, type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def boards(board: str | None, bundles: tuple[Path, ...], as_json: bool) -> None:
    """List the board kinds (basis, error band, unit costs, sources), or refine one with --refine KIND BUNDLE...

    Your own kinds live in $KERAS_EDGE_BOARDS (default ~/.config/keras-edge/boards.json), same format as
    the shipped table (docs/boards.md).
    """
    from keras_edge.device.profile.boards import load, save_user_board, user_path

    kind = board
    if kind is None:
        if bundles:
            raise click.UsageError("BUNDLE... only applies with --refine KIND")
        table = load()
        if as_json:
            click.echo(json.dumps({k: b.to_dict() for k, b in table.boards.items()}, indent=2))
            return
        rows = [("kind", "board", "cores", "basis", "band", "ns/MAC f32", "ns/MAC qs8")]
        rows += [(b.kind, b.name, str(b.cores), b.basis, f"±{b.band:.0%}", f"{b.ns_per_mac['f32']:.4f}",
                  f"{b.ns_per_mac['qs8']:.4f}") for b in table.boards.values()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        click.echo(f"sources: {'; '.join(f'{k}: {v}' for k, v in table.sources.items())}")
        click.echo(f"your own kinds: {user_path()}")
        return
    if not bundles:
        raise click.UsageError("--refine KIND needs the bundles whose report.json hold bench --on runs (BUNDLE...)")
    from keras_edge.device.contract.errors import EdgeError
    from keras_edge.host.convert.target import refine_from_bundles

    refined, runs = refine_from_bundles(kind, list(bundles))
    if not runs:
        raise EdgeError(f"none of the given bundles holds a bench --on run on a board of kind {kind}",
                        f"benchmark one there first: keras-edge bench BUNDLE --on HOST (the board must match {kind})")
    path = save_user_board(refined)
    click.echo(f"{kind}: refined on {runs} run(s): ns/MAC f32 {refined.ns_per_mac['f32']:.4f}, qs8 "
               f"{refined.ns_per_mac['qs8']:.4f}, band ±{refined.band:.0%}; saved in {path}")
