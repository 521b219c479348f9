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
    try:
        write_report(bundle_dir, rep)
        text = json.dumps(rep.to_dict(), indent=2) if as_json else table(rep.to_dict())
    except (TypeError, AttributeError, KeyError, IndexError, ValueError) as e:
        # report.json's measurements are free-form by design; one from elsewhere may hold any JSON where a number
        # or a table was written, and the renderer meets it first: a damaged file, said in one line
        raise BundleError(f"{bundle_dir / REPORT_JSON} holds a value keras-edge does not write ({type(e).__name__}: "
                          f"{str(e)[:160]})", "regenerate it: convert the bundle again") from None
    click.echo(text)
    if not as_json:
        click.echo(f"\ndefault: {rep.default} ({rep.default_reason})")
        click.echo(f"wrote {bundle_dir / 'report.md'} (every column explained) and {bundle_dir / 'report.png'}")
