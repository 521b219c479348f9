"""Board kinds and their cost tables: a model's latency predicted for a board nobody has measured it on.

The cost of one op on a board is its work times the board's cost of a unit of work for the op's kernels::

    work(op) = MACs(op) x (1 for dense ops, a for depthwise ones, 0 for the rest) + g x bytes(op) + o
    ms(op)   = work(op) x ns_per_mac[board][base(family)] x factor[family] / 1e6

``a`` (a depthwise MAC's cost in dense MACs), ``g`` (a byte moved, in MACs) and ``o`` (an op's fixed cost, in
MACs) are shared by every board; ``ns_per_mac`` has one number per board for float kernels and one for int8
ones (XNNPACK f32 and qs8); ``factor`` says how much slower the other kernel families are than those two
(builtin kernels, int16 activations, dynamic range). The tables live in ``boards.json`` beside this file,
with the published figures they were fitted on, where each figure comes from, which ones were held out and
the prediction error on those (``benchmarks/board.py`` refits them and measures the error).

A user adds a board kind (or overrides one) in a JSON file of the same shape: ``$KERAS_EDGE_BOARDS``, else
``~/.config/keras-edge/boards.json``. A board kind's own ``bench --on`` results refine its table
(:func:`refine`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..contract.errors import ConfigError, DataError
from ..contract.files import replace_file
from .graph import Family, OpClass, OpInfo

DATA = Path(__file__).resolve().parent / "boards.json"
FORMAT = "keras-edge-boards/1"
USER_ENV = "KERAS_EDGE_BOARDS"
USER_FILE = Path("~/.config/keras-edge/boards.json")
MAX_USER_BYTES = 1 << 20

# which of a board's two unit costs each kernel family is measured against
BASE = {Family.XNNPACK_F32: "f32", Family.XNNPACK_QS8: "qs8", Family.XNNPACK_QD8: "qs8", Family.BUILTIN_F32: "f32",
        Family.BUILTIN_INT8: "qs8", Family.BUILTIN_INT16: "qs8", Family.BUILTIN_HYBRID: "f32",
        Family.BUILTIN_OTHER: "f32"}


@dataclass(frozen=True)
class Shape:
    """The cost model's shared coefficients (see the module docstring)."""

    depthwise_mac: float = 4.0
    byte: float = 2.0
    op_macs: float = 20000.0
    parallel_fraction: float = 0.8      # Amdahl: how a time at the board's cores scales to fewer threads
    factor: dict[str, float] = field(default_factory=dict)   # Family value → slowdown against its base

    def work(self, op: OpInfo) -> float:
        mac = {OpClass.DENSE: 1.0, OpClass.DEPTHWISE: self.depthwise_mac}.get(op.op_class, 0.0)
        return op.macs * mac + self.byte * op.bytes + self.op_macs

    def family_factor(self, family: Family) -> float:
        return float(self.factor.get(str(family), 1.0))


@dataclass(frozen=True)
class Board:
    """One board kind: what it is, its unit costs, and how far its predictions are to be trusted."""

    kind: str
    name: str
    cores: int
    ns_per_mac: dict[str, float]        # "f32" and "qs8": ns per unit of work at ``cores`` threads
    band: float                         # relative error band of a prediction (0.25: ±25%)
    basis: str                          # "fit" (published figures), "derived" (scaled from a fitted board), "refined"
    match: dict[str, Any] = field(default_factory=dict)   # board facts that identify it: {"model": "...", "arch": [...]}
    fp16_arithmetic: bool = False
    notes: str = ""
    sources: tuple[str, ...] = ()

    def matches(self, facts: dict[str, str]) -> bool:
        """Whether a board's facts (``bench --on``: model, arch) are of this kind."""
        model = str(self.match.get("model") or "")
        arch = self.match.get("arch") or []
        return bool(model) and model.lower() in str(facts.get("model", "")).lower() and (
            not arch or str(facts.get("arch", "")) in arch)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "cores": self.cores, "ns_per_mac": dict(self.ns_per_mac), "band": self.band,
                "basis": self.basis, "match": dict(self.match), "fp16_arithmetic": self.fp16_arithmetic,
                "notes": self.notes, "sources": list(self.sources)}

    @classmethod
    def from_dict(cls, kind: str, d: dict[str, Any], where: str) -> "Board":
        try:
            ns = {k: float(v) for k, v in dict(d["ns_per_mac"]).items()}
            board = cls(kind, str(d.get("name") or kind), int(d.get("cores") or 4), ns, float(d.get("band", 0.5)),
                        str(d.get("basis") or "user"), dict(d.get("match") or {}), bool(d.get("fp16_arithmetic")),
                        str(d.get("notes") or ""), tuple(d.get("sources") or ()))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"board {kind!r} in {where} is malformed ({type(e).__name__}: {e})",
                            "give name, cores, ns_per_mac {\"f32\": ..., \"qs8\": ...} and band, as in the shipped boards.json")
        if set(ns) != {"f32", "qs8"} or not all(v > 0 and math.isfinite(v) for v in ns.values()) or board.cores < 1:
            raise DataError(f"board {kind!r} in {where} needs positive ns_per_mac for f32 and qs8 and 1+ cores",
                            "copy an entry of the shipped boards.json and change its numbers")
        return board


@dataclass(frozen=True)
class Prediction:
    """A predicted latency on a board kind, with its error band and what it rests on."""

    board: str
    ms: float
    low_ms: float
    high_ms: float
    threads: int
    basis: str
    by_family: dict[str, float] = field(default_factory=dict)   # ms per kernel family

    def to_dict(self) -> dict[str, Any]:
        return {"board": self.board, "ms": round(self.ms, 4), "low_ms": round(self.low_ms, 4),
                "high_ms": round(self.high_ms, 4), "threads": self.threads, "basis": self.basis,
                "by_family": {k: round(v, 4) for k, v in self.by_family.items()}}


@dataclass(frozen=True)
class Table:
    """Every board kind known here, and the shared shape of the cost model."""

    shape: Shape
    boards: dict[str, Board]
    published: tuple[dict[str, Any], ...] = ()
    sources: dict[str, str] = field(default_factory=dict)

    def board(self, kind: str) -> Board:
        if kind not in self.boards:
            raise ConfigError("board", f"{kind!r} is not a known board kind",
                              f"choose one of: {', '.join(sorted(self.boards))}, or add it to ${USER_ENV} "
                              f"(default {USER_FILE})")
        return self.boards[kind]

    def kind_of(self, facts: dict[str, str]) -> Board | None:
        """The board kind a ``bench --on`` board's facts belong to (None when no kind matches)."""
        return next((b for b in self.boards.values() if b.matches(facts)), None)


def load(user: str | os.PathLike | None = None) -> Table:
    """The shipped table, with the user's board kinds (``user``, ``$KERAS_EDGE_BOARDS`` or the default file) on top."""
    base = _read(DATA)
    shape = Shape(**{k: v for k, v in base["shape"].items() if k in Shape.__dataclass_fields__})
    boards = {k: Board.from_dict(k, v, str(DATA)) for k, v in base["boards"].items()}
    path = Path(user).expanduser() if user else user_path()
    if user is not None or path.is_file():   # a user table not yet written (boards --refine creates it) adds nothing
        extra = _read(path)
        boards.update({k: Board.from_dict(k, v, str(path)) for k, v in (extra.get("boards") or {}).items()})
    return Table(shape, boards, tuple(base.get("published") or ()), dict(base.get("sources") or {}))


def user_path() -> Path:
    return Path(os.environ.get(USER_ENV) or USER_FILE).expanduser()


def save_user_board(board: Board, path: str | os.PathLike | None = None) -> Path:
    """Add or replace ``board`` in the user's board table (created when missing), atomically."""
    target = Path(path) if path else user_path()
    data = _read(target) if target.is_file() else {"format": FORMAT, "boards": {}}
    data.setdefault("boards", {})[board.kind] = board.to_dict()
    target.parent.mkdir(parents=True, exist_ok=True)
    return replace_file(target, json.dumps(data, indent=1) + "\n")


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"board table {path} does not exist", f"create it, or unset ${USER_ENV}")
    if path.stat().st_size > MAX_USER_BYTES:
        raise DataError(f"board table {path} is larger than {MAX_USER_BYTES >> 10} KiB", "give a board table, not a dataset")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"board table {path} is not valid JSON ({e})", "fix the file or remove it") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DataError(f"board table {path} is not a {FORMAT} file", f"start it with \"format\": \"{FORMAT}\"")
    return d


def op_ms(op: OpInfo, board: Board, shape: Shape) -> float:
    """One op's predicted time on ``board`` at its core count (ms); ops on constants only are folded at load."""
    if not op.activations:
        return 0.0
    fam = op.family
    return shape.work(op) * board.ns_per_mac[BASE[fam]] * shape.family_factor(fam) / 1e6


def predict(ops: Sequence[OpInfo], board: Board, shape: Shape, threads: int | None = None) -> Prediction:
    """A model's latency on ``board`` from its ops, at ``threads`` (default: every core of the board)."""
    by_family: dict[str, float] = {}
    for op in ops:
        by_family[str(op.family)] = by_family.get(str(op.family), 0.0) + op_ms(op, board, shape)
    threads = threads or board.cores
    scale = _amdahl(threads, board.cores, shape.parallel_fraction)
    by_family = {k: v * scale for k, v in by_family.items()}
    ms = sum(by_family.values())
    return Prediction(board.kind, ms, ms / (1 + board.band), ms * (1 + board.band), threads, board.basis, by_family)


def predicted_ms(model: str | os.PathLike | bytes, kind: str, threads: int | None = None) -> float:
    """A model's (file or bytes) predicted latency on board ``kind`` (ms; default: at the board's core count)."""
    from .core import model_ops

    table = load()
    return predict(model_ops(model), table.board(kind), table.shape, threads).ms


def _amdahl(threads: int, cores: int, p: float) -> float:
    """Time at ``threads`` relative to the time at ``cores`` (more threads than cores do not help)."""
    t = lambda n: (1 - p) + p / max(1, min(n, cores))  # noqa: E731
    return t(threads) / t(cores)


def refine(board: Board, shape: Shape, observations: Iterable[tuple[Sequence[OpInfo], float, int]],
           prior: float = 1.0) -> Board:
    """``board`` with its unit costs scaled to its own measurements: (ops, measured ms, threads) per variant.

    Each observation counts toward the base (f32 or qs8) that most of its predicted time falls on; a base's
    cost is multiplied by the geometric mean of measured/predicted, shrunk toward 1 by ``prior`` pseudo-runs.
    The band becomes the largest error left on those runs (at least 5%).
    """
    logs: dict[str, list[float]] = {"f32": [], "qs8": []}
    obs = list(observations)
    for ops, ms, threads in obs:
        p = predict(ops, board, shape, threads)
        base_ms: dict[str, float] = {}
        for fam, v in p.by_family.items():
            base_ms[BASE[Family(fam)]] = base_ms.get(BASE[Family(fam)], 0.0) + v
        if p.ms > 0 and ms > 0:
            logs[max(base_ms, key=base_ms.get)].append(math.log(ms / p.ms))
    if not any(logs.values()):
        return board
    ns = {b: board.ns_per_mac[b] * math.exp(sum(v) / (len(v) + prior)) for b, v in logs.items() if v}
    refined = replace(board, ns_per_mac={**board.ns_per_mac, **ns}, basis="refined",
                      notes=(board.notes + f" Refined on {len(obs)} bench --on run(s).").strip())
    errors = [abs(predict(ops, refined, shape, t).ms / ms - 1) for ops, ms, t in obs if ms > 0]
    return replace(refined, band=max(0.05, max(errors, default=board.band)))
