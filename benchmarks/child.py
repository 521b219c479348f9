"""Launch one command, report when its first result appeared and its peak RSS: ``python child.py -- ARGV...``.

A small launcher of its own because of how Linux counts ``ru_maxrss``: a child forked (or vforked)
from a big parent inherits the parent's high-water mark, so the benchmark process, which holds
TensorFlow, would inflate every child's figure. Forked from this small process, the child's
``RUSAGE_CHILDREN`` maximum is its own (at least this launcher's ~10 MB).

Prints one JSON object: ``first_result_s`` (process start to its first stdout line), ``exit_s``,
``peak_rss_mb``, ``returncode``, ``first_line``, and ``stderr_tail`` when it failed.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time


def launch(argv: list[str]) -> dict:
    """Run ``argv`` (an argument list, no shell) and time its first stdout line and its exit."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, text=True)
        first = ""
        for line in proc.stdout:
            if line.strip():
                first = line.strip()
                break
        t_first = time.perf_counter() - t0
        proc.stdout.read()
        proc.wait()
        t_exit = time.perf_counter() - t0
        err.seek(0)
        tail = err.read().decode(errors="replace").strip().splitlines()[-3:]
    kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss   # this launcher has had one child
    out = {"first_result_s": t_first, "exit_s": t_exit, "peak_rss_mb": kb / 1024.0, "returncode": proc.returncode,
           "first_line": first[:2000]}
    if proc.returncode != 0 or not first:
        out["stderr_tail"] = tail
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    print(json.dumps(launch(args)))
