"""`keras-edge report`: show a bundle's report and regenerate report.md and report.png."""

from __future__ import annotations

import json
from pathlib import Path

import click

from keras_edge.options import json_flag


@click.command()
@click.argument("bundle_dir", metavar="BUNDLE", type=click.Path(path_type=Path))
@json_flag("one pretty-printed document: report.json's content")
def report(bundle_dir: Path, as_json: bool) -> None:
    """Show BUNDLE's report and regenerate report.md and report.png from report.json."""
    from keras_edge.device.contract import REPORT_JSON, read_manifest
    from keras_edge.device.contract import BundleError

    from keras_edge.host.report.contract import read_report
    from keras_edge.host.report.render import table, write_report

    read_manifest(bundle_dir)
    rep = read_report(bundle_dir)
    if rep is None:
        raise BundleError(f"{bundle_dir} has no {REPORT_JSON}", "reconvert the bundle with `keras-edge convert`")
    write_report(bundle_dir, rep)
    if as_json:
        click.echo(json.dumps(rep.to_dict(), indent=2))
    else:
        click.echo(table(rep.to_dict()))
        click.echo(f"\ndefault: {rep.default} ({rep.default_reason})")
        click.echo(f"wrote {bundle_dir / 'report.md'} (every column explained) and {bundle_dir / 'report.png'}")
