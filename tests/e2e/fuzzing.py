"""A small, seeded, time-bounded fuzz harness over the real CLI (issue 22).

Cases run in a worker process (fuzz_worker.py) that survives nothing: a case that kills it with a
signal is a *crash*, one that runs past its time limit is a *hang*, and in both cases a new worker
goes on after it. Every other case ends as a *clean error* (a non-zero exit with exactly one
``error:`` line and no traceback), a *result* (exit 0), or a *bug* (a traceback, several error lines,
or a NaN printed as a result). The counts are printed and, when ``KERAS_EDGE_FUZZ_RESULTS`` names a
folder (``make test`` sets it), written there as ``<name>.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

WORKER = Path(__file__).with_name("fuzz_worker.py")


@dataclass
class Counts:
    name: str
    seed: int
    budget_s: float
    cases: int = 0
    results: int = 0
    clean_errors: int = 0
    crashes: int = 0
    hangs: int = 0
    bugs: int = 0
    seconds: float = 0.0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def note(self, kind: str, text: str) -> None:
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(text[:200] + " … " + text[-700:] if len(text) > 900 else text)

    def line(self) -> str:
        return (f"fuzz {self.name} (seed {self.seed}, {self.seconds:.0f}s): {self.cases} cases run, {self.results} results, "
                f"{self.clean_errors} clean errors, {self.bugs} bugs, {self.crashes} crashes, {self.hangs} hangs")

    def record(self) -> None:
        print(self.line())
        folder = os.environ.get("KERAS_EDGE_FUZZ_RESULTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{self.name}.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


def run_cases(name: str, cases: list[dict], work: Path, seed: int, budget_s: float, case_timeout_s: float = 30.0,
              first_timeout_s: float = 90.0) -> Counts:
    """Run ``cases`` (``{"argv": [...], "env": {...}, "what": str}``) in order until done or ``budget_s`` is spent."""
    work.mkdir(parents=True, exist_ok=True)
    cases_path, progress, results = work / f"{name}.cases.jsonl", work / f"{name}.progress", work / f"{name}.results.jsonl"
    cases_path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    progress.write_text("")
    results.write_text("")
    counts = Counts(name, seed, budget_s)
    start = time.monotonic()
    first = 0
    while first < len(cases) and time.monotonic() - start < budget_s:
        proc = subprocess.Popen([sys.executable, str(WORKER), str(cases_path), str(first), str(progress), str(results)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
        seen, since = None, time.monotonic()
        while proc.poll() is None:
            lines = progress.read_text().split()
            current = int(lines[-1]) if lines else None
            if current != seen:
                seen, since = current, time.monotonic()
            limit = first_timeout_s if current == first else case_timeout_s   # a fresh worker imports first
            if time.monotonic() - start >= budget_s:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                first = len(cases)          # out of time: the case in progress is not counted
                break
            if current is not None and time.monotonic() - since > limit:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                counts.hangs += 1
                counts.note("hang", f"{cases[current]['what']}: {cases[current]['argv']}")
                first = current + 1
                break
            time.sleep(0.02)
        else:
            lines = progress.read_text().split()
            current = int(lines[-1]) if lines else first
            done = {json.loads(ln)["i"] for ln in results.read_text().splitlines()}
            if proc.returncode != 0 and current not in done:   # killed by this case
                counts.crashes += 1
                counts.note("crash", f"{cases[current]['what']}: exit {proc.returncode} "
                                     f"({_signal_name(proc.returncode)}): {proc.stderr.read()[-400:] if proc.stderr else ''}")
                first = current + 1
            else:
                first = len(cases)
    for line in results.read_text().splitlines():
        r = json.loads(line)
        case = cases[r["i"]]
        counts.cases += 1
        if r["traceback"] or r["n_errors"] > 1 or r["nan"]:
            counts.bugs += 1
            counts.note("bug", f"{case['what']}: {r['traceback'] or r['errors'] or 'nan printed as a result'}")
        elif r["rc"] == 0:
            counts.results += 1
        elif r["n_errors"] == 1 and r["errors"][0].startswith("error: "):
            counts.clean_errors += 1
        else:
            counts.bugs += 1
            counts.note("bug", f"{case['what']}: exit {r['rc']} without one error line")
    counts.cases += counts.crashes + counts.hangs
    counts.seconds = time.monotonic() - start
    return counts


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name if rc < 0 else f"status {rc}"
    except ValueError:
        return f"signal {-rc}"
