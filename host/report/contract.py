"""``report.json``, the bundle's second contract: host measurements and board benchmarks.

This module alone reads and writes it. Everything else holds a :class:`Report` and changes it with
its methods (``with_board``), never as a loose dict. Like the manifest it carries a format version;
files written before the version existed (no ``format`` key) are read as version 1. No TensorFlow
here: ``deploy`` and ``bench --on`` store board results on a machine without it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from keras_edge.device.contract.bundle import REPORT_JSON, Variant, jsonable
from keras_edge.device.contract import BundleError
from keras_edge.device.contract.files import read_json, replace_file

REPORT_FORMAT = "keras-edge-report/1"


@dataclass(frozen=True)
class VariantRecord:
    """What the report says of one variant: the manifest's facts plus host metrics."""

    name: str
    mode: str
    status: str
    reason: str = ""
    bytes: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, v: Variant) -> "VariantRecord":
        return cls(v.name, v.mode, str(v.status), v.reason, v.bytes, dict(v.metrics or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "status": self.status, "reason": self.reason,
                "bytes": self.bytes, "convert_s": self.metrics.get("convert_s"), "metrics": jsonable(self.metrics)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VariantRecord":
        return cls(str(d["name"]), str(d.get("mode", d["name"])), str(d["status"]), str(d.get("reason") or ""),
                   int(d.get("bytes") or 0), dict(d.get("metrics") or {}))


@dataclass(frozen=True)
class BoardRun:
    """One ``keras-edge bench --on HOST`` result: the board's facts and its bench JSON."""

    fingerprint: str
    host: str
    version: str          # the bundle's content hash the board ran
    measured: str         # ISO 8601, UTC
    board: dict[str, str] = field(default_factory=dict)
    bench: dict[str, Any] = field(default_factory=dict)   # device.bench.BenchReport.to_dict()

    @property
    def key(self) -> str:
        """Where the report keeps this run: board kind and host, so identical boards do not overwrite each other."""
        return f"{self.fingerprint}@{self.host}" if self.host else self.fingerprint

    def latencies(self) -> dict[str, float]:
        """p50 per variant at the highest thread count measured (errors left out)."""
        best: dict[str, tuple[int, float]] = {}
        for r in self.bench.get("results", []):
            if r.get("median_ms") and not r.get("error"):
                threads = int(r.get("threads") or 0)
                if r["variant"] not in best or threads > best[r["variant"]][0]:
                    best[r["variant"]] = (threads, float(r["median_ms"]))
        return {k: v for k, (_, v) in best.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "host": self.host, "board": dict(self.board), "version": self.version,
                "measured": self.measured, "bench": self.bench}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BoardRun":
        bench = d.get("bench") or {}
        problem = bench_problem(bench)
        if problem:
            raise ValueError(f"board run {d.get('host', '')!r}: {problem}")
        return cls(str(d.get("fingerprint", "board")), str(d.get("host", "")), str(d.get("version", "")),
                   str(d.get("measured", "")), dict(d.get("board") or {}), dict(bench))


_NUMBERS = ("runs", "bytes", "init_ms", "first_ms", "median_ms", "p90_ms", "p99_ms", "min_ms", "mean_ms", "std_ms",
            "throughput_ips", "rss_mb", "threads")
_TEXTS = ("variant", "backend", "runtime", "accelerator")


def bench_problem(bench: Any) -> str | None:
    """What is wrong with a board's bench JSON (it comes from the board, so from anyone), or None.

    Every result is an object whose measurements are finite, non-negative numbers (or null) and whose
    names are text: ``"median_ms": "fast"`` is refused here instead of failing every later reader.
    """
    if not isinstance(bench, dict):
        return "the bench JSON is not an object"
    if not isinstance(bench.get("environment", {}), dict):
        return "the bench JSON's environment is not an object"
    results = bench.get("results")
    if not isinstance(results, list):
        return "the bench JSON has no list of results"
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            return f"results[{i}] is not an object"
        for key in _TEXTS:
            if key in r and not isinstance(r[key], str):
                return f"results[{i}].{key} is {r[key]!r}, not text"
        if not isinstance(r.get("variant"), str):
            return f"results[{i}] names no variant"
        for key in _NUMBERS:
            v = r.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < float("inf")):
                return f"results[{i}].{key} is {v!r}, not a measurement"
        if r.get("error") is not None and not isinstance(r["error"], str):
            return f"results[{i}].error is {r['error']!r}, not text"
        if not isinstance(r.get("notes", []), list) or not all(isinstance(n, str) for n in r.get("notes", [])):
            return f"results[{i}].notes is not a list of text"
    return None


PROFILE_FORMAT = "keras-edge-profile/1"   # device.profile.core.FORMAT: the profile JSON this report reads


@dataclass(frozen=True)
class ProfileRun:
    """One ``keras-edge profile --on HOST`` result: the board's facts and its per-op profile JSON.

    The report keeps one per board kind and variant (:attr:`key`): a newer profile of the same kind replaces
    the older. A profile in a format this version does not read is kept as it is (a rewrite loses nothing)
    and :meth:`profile` refuses it with one line.
    """

    fingerprint: str
    host: str
    version: str          # the bundle's content hash the board ran
    measured: str         # ISO 8601, UTC
    variant: str = ""
    board: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)   # device.profile.Profile.to_dict()

    @property
    def key(self) -> str:
        return f"{self.fingerprint}/{self.variant}" if self.variant else self.fingerprint

    def profile(self):
        """The :class:`keras_edge.device.profile.Profile` this run holds."""
        from keras_edge.device.profile.core import Profile

        fmt = self.data.get("format")
        if fmt != PROFILE_FORMAT:
            raise BundleError(f"the {self.key} profile in {REPORT_JSON} has format {fmt!r}; this keras-edge reads "
                              f"{PROFILE_FORMAT!r}", "profile the board again with this keras-edge")
        return Profile.from_dict(self.data)

    def to_dict(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "host": self.host, "version": self.version, "measured": self.measured,
                "variant": self.variant, "board": dict(self.board), "profile": self.data}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ProfileRun":
        return cls(str(d.get("fingerprint", "board")), str(d.get("host", "")), str(d.get("version", "")),
                   str(d.get("measured", "")), str(d.get("variant") or ""), dict(d.get("board") or {}),
                   dict(d.get("profile") or {}))


@dataclass(frozen=True)
class Report:
    """Everything ``report.json`` holds."""

    name: str
    default: str | None = None
    default_reason: str = ""
    keras: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    variants: tuple[VariantRecord, ...] = ()
    selective: dict[str, Any] | None = None
    ptq: dict[str, Any] | None = None       # int8-ptq: what each post-training step bought
    boards: dict[str, BoardRun] = field(default_factory=dict)
    pruning: dict[str, Any] | None = None   # the budgeted pruning search's measured curve
    budget: float | None = None             # --max-accuracy-drop: the largest drop a default may have (a fraction)
    profiles: dict[str, ProfileRun] = field(default_factory=dict)   # per board kind and variant (ProfileRun.key)
    target: dict[str, Any] | None = None    # convert --board: the board kind, its predictions and the default's basis
    integer: dict[str, Any] | None = None   # the integer route when int8 left ops in float (convert/integer.py)
    format: str = REPORT_FORMAT

    def with_board(self, run: BoardRun) -> "Report":
        return replace(self, boards={**self.boards, run.key: run})

    def with_profile(self, run: ProfileRun) -> "Report":
        return replace(self, profiles={**self.profiles, run.key: run})

    def with_boards_of(self, previous: "Report | None") -> "Report":
        """This report carrying the board runs and profiles of ``previous`` (a reconvert keeps what boards measured)."""
        if previous is None or not (previous.boards or previous.profiles):
            return self
        return replace(self, boards={**previous.boards, **self.boards},
                       profiles={**previous.profiles, **self.profiles})

    def latest_board(self) -> BoardRun | None:
        runs = [b for b in self.boards.values() if b.latencies()]
        return max(runs, key=lambda b: b.measured) if runs else None

    def fleet(self) -> dict[str, Any]:
        """Board runs aggregated per board kind (fingerprint): for each variant, the median p50 across
        the boards of that kind and its spread (min, max, and (max-min)/median in percent)."""
        kinds: dict[str, list[BoardRun]] = {}
        for run in self.boards.values():
            kinds.setdefault(run.fingerprint, []).append(run)
        out: dict[str, Any] = {}
        for fp, runs in sorted(kinds.items()):
            per_variant: dict[str, list[float]] = {}
            for run in runs:
                for variant, p50 in run.latencies().items():
                    per_variant.setdefault(variant, []).append(p50)
            variants = {}
            for variant, p50s in sorted(per_variant.items()):
                med = _median(p50s)
                variants[variant] = {"boards": len(p50s), "median_p50_ms": round(med, 4),
                                     "min_p50_ms": round(min(p50s), 4), "max_p50_ms": round(max(p50s), 4),
                                     "spread_pct": round(100 * (max(p50s) - min(p50s)) / med, 1) if med else None}
            out[fp] = {"boards": len(runs), "hosts": sorted(r.host for r in runs), "variants": variants}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "name": self.name, "default": self.default,
                "default_reason": self.default_reason, "budget": self.budget, "keras": jsonable(self.keras), "notes": list(self.notes),
                "variants": [v.to_dict() for v in self.variants], "selective": jsonable(self.selective),
                "pruning": jsonable(self.pruning),
                "ptq": jsonable(self.ptq), "integer": jsonable(self.integer),
                "boards": {k: b.to_dict() for k, b in sorted(self.boards.items())},
                "profiles": {k: p.to_dict() for k, p in sorted(self.profiles.items())},
                "target": jsonable(self.target),
                "fleet": self.fleet()}   # derived from boards; not read back

    @classmethod
    def from_dict(cls, d: Any, where: str = REPORT_JSON) -> "Report":
        if not isinstance(d, dict):
            raise BundleError(f"{where} is not a JSON object", "regenerate it by converting the bundle again")
        fmt = d.get("format", REPORT_FORMAT)
        if fmt != REPORT_FORMAT:
            raise BundleError(f"{where} has format {fmt!r}; this keras-edge reads {REPORT_FORMAT!r}",
                              "use the keras-edge version that wrote it, or convert the bundle again")
        try:
            return cls(name=str(d.get("name", "bundle")), default=d.get("default"),
                       default_reason=str(d.get("default_reason") or ""), keras=dict(d.get("keras") or {}),
                       notes=tuple(d.get("notes") or ()),
                       variants=tuple(VariantRecord.from_dict(v) for v in d.get("variants") or ()),
                       selective=d.get("selective"), pruning=d.get("pruning"), ptq=d.get("ptq"),
                       budget=float(d["budget"]) if d.get("budget") is not None else None,
                       integer=d.get("integer"),
                       boards={k: BoardRun.from_dict(b) for k, b in (d.get("boards") or {}).items()},
                       profiles={k: ProfileRun.from_dict(p) for k, p in (d.get("profiles") or {}).items()},
                       target=d.get("target"))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise BundleError(f"{where} is not a keras-edge report ({type(e).__name__}: {e})",
                              "regenerate it by converting the bundle again") from None


def _median(values: list[float]) -> float:
    s = sorted(values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def read_report(bundle_dir: str | os.PathLike) -> Report | None:
    """The report of the bundle at ``bundle_dir``, or None when it has none."""
    path = Path(bundle_dir) / REPORT_JSON
    if not os.path.lexists(path):
        return None
    data = read_json(path, str(path), "regenerate it by converting the bundle again", BundleError)   # bounded
    return Report.from_dict(data, str(path))


def write_report_json(bundle_dir: str | os.PathLike, report: Report) -> Path:
    """Replace ``report.json`` atomically (a temporary file beside it, then rename)."""
    return replace_file(Path(bundle_dir) / REPORT_JSON, json.dumps(report.to_dict(), indent=2) + "\n")
