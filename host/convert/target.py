"""``convert --board KIND``: each variant's latency predicted for the named board kind.

The prediction reads every variant file's ops on this machine's interpreter (which ones XNNPACK takes:
the board's LiteRT takes the same) and prices them with the board kind's cost table
(:mod:`keras_edge.device.profile.boards`). When the bundle being replaced was benchmarked on a board of
that kind (``bench --on``), those runs refine the table first: their measured times against the old
variant files, which are still on disk. The default is then chosen by the board's measured latency when
there is one, else by this prediction, else by the workstation's (:mod:`.choose`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from keras_edge.device.contract import bundle as B

Log = Callable[[str], None]


@dataclass(frozen=True)
class BoardPredictions:
    """Predicted p50 latency per variant on one board kind, with the band and the table's basis."""

    kind: str
    name: str
    latency_ms: dict[str, float]
    band: float
    basis: str              # of the cost table: fit, derived, refined, user
    refined_on: int = 0     # bench --on runs that refined it

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.kind, "name": self.name, "band": self.band, "table_basis": self.basis,
                "refined_on_runs": self.refined_on, "predicted_ms": {k: round(v, 4) for k, v in self.latency_ms.items()}}


def check_board(kind: str | None) -> None:
    """Fail early (before converting) on a board kind the table does not know."""
    if kind is not None:
        from keras_edge.device.profile.boards import load

        load().board(kind)


def predict_variants(tmp: Path, variants: list[B.Variant], kind: str, previous: Any, previous_dir: Path,
                     log: Log) -> tuple[list[B.Variant], BoardPredictions]:
    """Every usable variant's predicted latency on board ``kind``, stored in its metrics (``board``)."""
    from keras_edge.device.profile.boards import load, predict
    from keras_edge.device.profile.core import model_ops

    table = load()
    board = table.board(kind)
    runs = _observations(table, board, previous, previous_dir)
    if runs:
        from keras_edge.device.profile.boards import refine

        board = refine(board, table.shape, runs)
        log(f"board {kind}: cost table refined on {len(runs)} bench --on run(s) of this bundle's previous version")
    out, latency = [], {}
    for v in variants:
        if v.status is B.VariantStatus.CONVERSION_FAILED or not v.file or not (tmp / v.file).is_file():
            out.append(v)
            continue
        p = predict(model_ops(tmp / v.file), board, table.shape)
        latency[v.name] = p.ms
        out.append(replace(v, metrics={**v.metrics, "board": p.to_dict()}))
    preds = BoardPredictions(kind, board.name, latency, board.band, board.basis, len(runs))
    log(f"board {kind} ({board.name}), predicted p50 at {board.cores} threads (±{board.band:.0%}, table: {board.basis}): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in latency.items()))
    return out, preds


def predicted_ms(path: Path, kind: str) -> float:
    """One model file's predicted latency on board ``kind`` (ms, at the board's core count)."""
    from keras_edge.device.profile.boards import predicted_ms as predict_file

    return predict_file(path, kind)


def refine_from_bundles(kind: str, bundles: list[Path]) -> tuple[Any, int]:
    """Board kind ``kind`` refined on the ``bench --on`` runs (of boards of that kind) stored in these bundles'
    reports: the fleet's measurements as data for the table. Returns (refined Board, runs used)."""
    from keras_edge.device.profile.boards import load, refine

    from ..report.contract import read_report

    table = load()
    board = table.board(kind)
    obs = [o for b in bundles for o in _observations(table, board, read_report(b), Path(b))]
    return (refine(board, table.shape, obs) if obs else board), len(obs)


def _observations(table, board, previous: Any, previous_dir: Path) -> list[tuple[list, float, int]]:
    """(ops, measured p50, threads) of the previous bundle's variants on boards of this kind."""
    if previous is None or not previous.boards:
        return []
    from keras_edge.device.profile.core import model_ops

    from keras_edge.device.contract.errors import EdgeError

    files = {}
    try:
        for v in B.read_manifest(previous_dir).usable:
            files[v.name] = B.check_variant(previous_dir, v)   # inside the bundle, checksum as written
    except EdgeError:  # a damaged previous bundle only means nothing to refine with
        pass
    obs = []
    for run in previous.boards.values():
        if not board.matches(run.board):
            continue
        for r in run.bench.get("results", []):
            if r.get("error") or not r.get("median_ms") or r.get("variant") not in files or r.get("accelerator", "cpu") != "cpu":
                continue
            obs.append((model_ops(files[r["variant"]]), float(r["median_ms"]), int(r.get("threads") or board.cores)))
    return obs
