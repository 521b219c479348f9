"""The one way keras-edge starts a child process of its own: ``python -P -m MODULE JOB_JSON OUT_JSON``.

Used for work that must not share this process: a GPU compile that may hang or crash the driver
(:mod:`.gpu_child`) and a benchmark measurement whose init time and peak memory must be its own
(:mod:`keras_edge.device.bench.worker`). An argument list, JSON in and out: no shell, no pickle.

``-P`` (and ``PYTHONSAFEPATH=1`` for the child's own children) keeps the working directory off the
child's ``sys.path``: started inside a clone of this repository, or any folder holding a package of
the same name, the child still imports the installed keras-edge, not files it happens to find there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class ChildResult:
    """What a child left: its JSON (None if it wrote none), how it ended, and stderr's last line."""

    data: dict[str, Any] | None
    returncode: int | None
    stderr: str = ""
    wall_ms: float = 0.0
    timed_out: bool = False

    @property
    def signal(self) -> int | None:
        """The signal that killed the child, if one did."""
        return -self.returncode if self.returncode is not None and self.returncode < 0 else None

    @property
    def last_error_line(self) -> str:
        tail = self.stderr.strip().splitlines()[-1:] or [f"exit status {self.returncode}"]
        return tail[0][:200]


def child_command(module: str, *args: str) -> list[str]:
    """The argument list that runs ``module`` in a fresh interpreter that cannot see the working directory."""
    return [sys.executable, "-P", "-m", module, *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONSAFEPATH": "1"}


def run_child(module: str, job: dict[str, Any], timeout: float) -> ChildResult:
    """Run ``module``'s ``main([JOB_JSON, OUT_JSON])`` in a fresh process within ``timeout`` seconds."""
    fd, out = tempfile.mkstemp(prefix="keras-edge-child-", suffix=".json")
    os.close(fd)
    t0 = time.perf_counter()
    try:
        try:
            proc = subprocess.run(child_command(module, json.dumps(job), out), capture_output=True, text=True,
                                  timeout=timeout, check=False, env=child_env())
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            return ChildResult(None, None, stderr, (time.perf_counter() - t0) * 1000, timed_out=True)
        wall = (time.perf_counter() - t0) * 1000
        text = Path(out).read_text(encoding="utf-8")
        return ChildResult(json.loads(text) if text else None, proc.returncode, proc.stderr or "", wall)
    finally:
        Path(out).unlink(missing_ok=True)
