"""``keras-edge bench --on HOST`` and ``profile --on HOST``: run the board's own benchmark or profile over ssh
and keep it in the report."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from keras_edge.device.contract import bundle
from keras_edge.device.contract.files import parse_json
from keras_edge.host.errors import RemoteError

from ..report.contract import BoardRun, ProfileRun, Report, bench_problem, read_report, write_report_json
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
    facts, bench = _run_json(src, host, scripts.BENCH, "bench", args, ssh, bench_problem)
    run = BoardRun(fingerprint=board_fingerprint(facts), host=host, board=facts, version=bundle.content_hash(src),
                   measured=_now(), bench=bench)
    store_board_result(src, run)
    return run


def remote_profile(bundle_dir: str | os.PathLike, host: str, args: Sequence[str] = (), *,
                   ssh: SshOptions | None = None) -> ProfileRun:
    """Run the board's ``keras-edge profile <current> --json`` and keep it in the report, per board kind and variant."""
    src = Path(bundle_dir)
    facts, data = _run_json(src, host, scripts.PROFILE, "profile", args, ssh,
                            lambda d: None if isinstance(d.get("rows"), list) else "it has no list of rows")
    run = ProfileRun(fingerprint=board_fingerprint(facts), host=host, version=bundle.content_hash(src),
                     measured=_now(), variant=str(data.get("variant") or ""), board=facts, data=data)
    report = read_report(src) or Report(name=bundle.read_manifest(src).name)
    write_report_json(src, report.with_profile(run))
    return run


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _run_json(src: Path, host: str, script: str, command: str, args: Sequence[str], ssh: SshOptions | None,
              problem: Callable[[Any], str | None]) -> tuple[dict[str, str], dict]:
    """Run a board script that prints facts, ``json-follows``, then a command's JSON: (facts, JSON).

    The board's reply is untrusted: its JSON is parsed with size and nesting bounds, and ``problem`` says what
    is wrong with its shape (None when it is well formed)."""
    manifest = bundle.read_manifest(src)
    check_name(manifest.name)   # it reaches the board's shell as an argument
    result = run_script(Target.parse(host), ssh or SshOptions(), script, [manifest.name, bundle.content_hash(src), *args])
    if result.returncode != 0:
        raise RemoteError(f"{host}: {command} failed on the board: {result.failure()}")
    fix = "update the runner on the board with `keras-edge deploy --install-runner`"
    _, marker, body = result.stdout.partition("json-follows\n")
    if not marker:
        raise RemoteError(f"{host}: the board's `keras-edge {command} --json` printed no {command} JSON", fix)
    data = parse_json(body, f"{host}: the board's {command} JSON", fix, RemoteError)   # bounded: size and nesting
    why = problem(data) if isinstance(data, dict) else "it is not a JSON object"
    if why:
        raise RemoteError(f"{host}: the board's {command} JSON is malformed: {why}", fix)
    facts = {k: result.values.get(k, "") for k in ("model", "cpu", "arch", "os", "os_id", "kernel", "hostname", "cores")}
    return facts, data


def store_board_result(bundle_dir: str | os.PathLike, run: BoardRun) -> Path:
    """Add ``run`` to the bundle's report (atomic replace); a bundle without a report gets a minimal one."""
    report = read_report(bundle_dir) or Report(name=bundle.read_manifest(bundle_dir).name)
    return write_report_json(bundle_dir, report.with_board(run))


