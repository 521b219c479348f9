"""``keras-edge bench --on HOST``: run the board's own benchmark over ssh and keep it in the report."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Sequence

from keras_edge.device.contract import bundle
from keras_edge.device.contract.files import parse_json
from keras_edge.host.errors import RemoteError

from ..report.contract import BoardRun, Report, bench_problem, read_report, write_report_json
from . import scripts
from .core import board_fingerprint, check_name
from .ssh import SshOptions, Target, run_script


def remote_bench(bundle_dir: str | os.PathLike, host: str, args: Sequence[str] = (), *,
                 ssh: SshOptions | None = None) -> BoardRun:
    """Run the board's ``keras-edge bench <current> --json`` and store it in the bundle's report.

    The board must run this very bundle (same version). The result goes into the report's board
    runs; the returned :class:`BoardRun` holds the board facts and the bench JSON for the caller.
    """
    src = Path(bundle_dir)
    manifest = bundle.read_manifest(src)
    check_name(manifest.name)   # it reaches the board's shell as an argument
    version = bundle.content_hash(src)
    target = Target.parse(host)
    result = run_script(target, ssh or SshOptions(), scripts.BENCH, [manifest.name, version, *args])
    if result.returncode != 0:
        raise RemoteError(f"{host}: bench failed on the board: {result.failure()}")
    _, marker, body = result.stdout.partition("json-follows\n")
    if not marker:
        raise RemoteError(f"{host}: the board's `keras-edge bench --json` printed no benchmark JSON",
                          "update the runner on the board with `keras-edge deploy --install-runner`")
    bench = parse_json(body, f"{host}: the board's bench JSON", "update the runner on the board with "
                       "`keras-edge deploy --install-runner`", RemoteError)   # bounded: size and nesting
    problem = bench_problem(bench)
    if problem:
        raise RemoteError(f"{host}: the board's bench JSON is malformed: {problem}",
                          "update the runner on the board with `keras-edge deploy --install-runner`")
    facts = {k: result.values.get(k, "") for k in ("model", "cpu", "arch", "os", "os_id", "kernel", "hostname", "cores")}
    run = BoardRun(fingerprint=board_fingerprint(facts), host=host, board=facts, version=version,
                   measured=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), bench=bench)
    store_board_result(src, run)
    return run


def store_board_result(bundle_dir: str | os.PathLike, run: BoardRun) -> Path:
    """Add ``run`` to the bundle's report (atomic replace); a bundle without a report gets a minimal one."""
    report = read_report(bundle_dir) or Report(name=bundle.read_manifest(bundle_dir).name)
    return write_report_json(bundle_dir, report.with_board(run))


