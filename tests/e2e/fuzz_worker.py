"""Runs fuzz cases through the real CLI entry point, one after another, in one process (see fuzzing.py).

    python fuzz_worker.py CASES.jsonl FIRST PROGRESS RESULTS

Before each case it appends the case's index to PROGRESS, so that when a case kills the process
(a crash signal) or hangs, the parent knows which one did and starts a new worker after it. Each
finished case appends one JSON line to RESULTS: exit code, error lines, traceback or not.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import traceback


def main(argv: list[str]) -> int:
    cases_path, first, progress_path, results_path = argv[0], int(argv[1]), argv[2], argv[3]
    limit = int(os.environ.get("FUZZ_MEMORY_LIMIT", str(6 << 30)))   # a runaway allocation fails, not the machine
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from keras_edge.cli import main as cli

    with open(cases_path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    progress = open(progress_path, "a", encoding="utf-8")
    results = open(results_path, "a", encoding="utf-8")
    base_env = dict(os.environ)
    for i in range(first, len(cases)):
        case = cases[i]
        progress.write(f"{i}\n")
        progress.flush()
        os.environ.clear()
        os.environ.update({**base_env, **case.get("env", {})})
        out, err = io.StringIO(), io.StringIO()
        tb = None
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = cli(case["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:  # noqa: BLE001 - a bug: recorded as a traceback
            rc, tb = -1, traceback.format_exc()[-1500:]
        text = err.getvalue()
        errors = [ln for ln in text.splitlines() if ln.startswith("error")]
        results.write(json.dumps({"i": i, "rc": rc, "errors": errors[:3], "n_errors": len(errors),
                                  "traceback": tb or ("Traceback" in text + out.getvalue() and text[-2000:]) or None,
                                  "nan": " nan" in out.getvalue()}) + "\n")
        results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
