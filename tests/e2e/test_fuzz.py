"""Fuzzing in `make test` (issue 22): seeded, bounded in time, through the real CLI.

1. ``.tflite`` files with flipped bytes and truncations through ``run``: no crash signal, no hang, no traceback.
2. Manifest and report mutations (types swapped, keys dropped, values out of range, deep nesting, hostile
   strings) through ``run``, ``verify`` and ``report``: one ``error:`` line or a result.
3. Hostile strings (shell, rsync/ssh option injection, Jinja templates, newlines) through every place a name
   reaches ssh, rsync, a board's shell or Ansible, against a real sshd board: refused with one line, or
   arriving on the board as the very same string; a canary file that any of them would create never appears.

Each prints its counts (cases run, results, clean errors, bugs, crashes, hangs); ``make test`` also writes them
to ``build/fuzz/``. Budgets: about 15 + 20 + 10 s (and one ansible-playbook run).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from fuzzing import Counts, run_cases

from keras_edge.cli import main
from tests.support import tiny_classifier

SEED = 22
SIZE = 16
BUDGET_S = float(os.environ.get("KERAS_EDGE_FUZZ_SECONDS", "15"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, write_images) -> SimpleNamespace:
    """A tiny untrained classifier converted to fp32 and int8 (only what hostile data does matters here)."""
    root = tmp_path_factory.mktemp("fuzz")
    tiny_classifier(root / "tiny.keras", SIZE)
    calib = write_images(root / "calib", {"a": 4, "b": 4, "c": 4}, size=SIZE)
    bundle = root / "bundle"
    assert main(["convert", str(root / "tiny.keras"), "-o", str(bundle), "--calib", str(calib), "--variants",
                 "fp32,int8", "--name", "tiny"]) == 0
    (bundle / "labels.txt").write_text("a\nb\nc\n")
    m = json.loads((bundle / "manifest.json").read_text())
    m["labels"] = "labels.txt"
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2))
    return SimpleNamespace(root=root, bundle=bundle, image=next((calib / "a").glob("*.png")))


def check(counts: Counts) -> None:
    counts.record()
    assert counts.cases >= 20, f"too few cases ran in the budget: {counts.line()}"
    assert (counts.crashes, counts.hangs, counts.bugs) == (0, 0, 0), f"{counts.line()}\n{json.dumps(counts.examples, indent=2)}"


# --- 1. .tflite byte flips and truncations through `run` -----------------------------------------------------------

def tflite_mutants(model: bytes, rng: random.Random, n: int):
    for k in range(n):
        data = bytearray(model)
        kind = rng.choice(["flip", "flip", "flip", "truncate", "zero", "header"])
        if kind == "flip":
            for _ in range(rng.choice([1, 1, 2, 4, 16, 64])):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == "truncate":
            data = data[:rng.randrange(len(data))]
        elif kind == "zero":
            at = rng.randrange(len(data))
            data[at:at + rng.randrange(1, 256)] = bytes(min(len(data) - at, 255))
        else:   # the flatbuffer's tables and vtables sit near the start and the end
            for _ in range(rng.choice([1, 2, 4])):
                at = rng.randrange(min(512, len(data))) if rng.random() < 0.5 else len(data) - 1 - rng.randrange(2048)
                data[at] = rng.randrange(256)
        yield kind, bytes(data)


def test_fuzz_tflite_through_run(tiny, tmp_path):
    rng = random.Random(SEED)
    cases = []
    for source in ("fp32", "int8"):
        model = (tiny.bundle / f"{source}.tflite").read_bytes()
        for k, (kind, data) in enumerate(tflite_mutants(model, rng, 400)):
            path = tmp_path / f"{source}-{k:04d}.tflite"
            path.write_bytes(data)
            cases.append({"argv": ["run", str(path), str(tiny.image)], "what": f"{source} {kind} #{k}"})
    rng.shuffle(cases)
    check(run_cases("tflite", cases, tmp_path / "work", SEED, BUDGET_S))


# --- 2. manifest and report mutations through run / verify / report ------------------------------------------------

HOSTILE_VALUES = [None, True, False, 0, -1, 1, 2 ** 63, -(2 ** 70), 1e308, -1e-300, float("nan"), float("inf"), "", "x",
                  "../../../etc/passwd", "/etc/passwd", "fp32.tflite", "int8", "detection", "classification",
                  "{{ lookup('pipe', 'id') }}", "$(id)", "é" * 300, "\udcff", "a\nb", [], {}, [1, 2, 3], ["a"],
                  {"a": 1}, [[[[[]]]]], [-1, 16, 16, 3], [1, 100000, 100000, 3], [1, 0, 0, 3]]


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


def mutate(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    where = rng.choice([p for p in paths(doc) if p])
    parent = doc
    for k in where[:-1]:
        parent = parent[k]
    key = where[-1]
    action = rng.choice(["replace", "replace", "replace", "delete", "nest", "duplicate", "numbers"])
    if action == "replace":
        parent[key] = copy.deepcopy(rng.choice(HOSTILE_VALUES))
    elif action == "delete":
        del parent[key]
    elif action == "nest":   # written into the text at the end (see unnest): Python's own json would recurse
        parent[key] = f"__nest_{rng.choice([2, 70, 5000])}__{json.dumps(parent[key])}"
    elif action == "duplicate" and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[key]))
    elif isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        parent[key] = rng.choice([-parent[key], parent[key] * 1000, parent[key] + 1, 0])
    else:
        parent[key] = rng.choice(HOSTILE_VALUES)
    return doc, f"{action} {'/'.join(map(str, where))}"


def unnest(text: str) -> str:
    """Each ``"__nest_N__VALUE"`` string of :func:`mutate` as VALUE inside N nested lists."""
    import re

    def deep(m: re.Match) -> str:
        depth, value = int(m.group(1)), json.loads(json.loads(f'"{m.group(2)}"'))
        return "[" * depth + json.dumps(value) + "]" * depth
    return re.sub(r'"__nest_(\d+)__((?:[^"\\]|\\.)*)"', deep, text)


def test_fuzz_manifest_and_report(tiny, tmp_path):
    rng = random.Random(SEED)
    manifest = json.loads((tiny.bundle / "manifest.json").read_text())
    report = json.loads((tiny.bundle / "report.json").read_text())
    cases = []
    for k in range(1200):
        target = rng.choice(["manifest.json"] * 3 + ["report.json"])
        doc, what = mutate(manifest if target == "manifest.json" else report, rng)
        for _ in range(rng.choice([0, 0, 1, 2])):
            doc, more = mutate(doc, rng)
            what += f", {more}"
        b = tmp_path / f"b{k:04d}"
        b.mkdir()
        for f in tiny.bundle.iterdir():   # hard links: a symlink out of the bundle is refused, rightly
            if f.name != target:
                os.link(f, b / f.name)
        (b / target).write_text(unnest(json.dumps(doc)))
        command = rng.choice(["run", "verify", "report"] if target == "manifest.json" else ["report"])
        argv = [command, str(b)] + ([str(tiny.image)] if command == "run" else [])
        cases.append({"argv": argv, "what": f"{command} {target}: {what}"})
    check(run_cases("manifest-report", cases, tmp_path / "work", SEED, BUDGET_S + 5, first_timeout_s=120))


# --- 3. hostile strings wherever a name reaches ssh, rsync, a board's shell or Ansible --------------------------------

def hostile(canary: Path) -> list[str]:
    c = str(canary)
    return [f"$(touch {c})", f"`touch {c}`", f";touch {c}", f"|touch {c}", f"&&touch {c}", f"x\ntouch {c}",
            f"'; touch {c}; '", f"\"; touch {c}; \"", f"{{{{ lookup('pipe', 'touch {c}') }}}}",
            f"{{% set x = lookup('pipe', 'touch {c}') %}}", f"-oProxyCommand=touch {c}", f"--rsh=touch {c}",
            f"-e touch {c}", "../../../../tmp/escape", "$HOME", "*", "~root", "a b", "\t", "-", "--", "é€", "x" * 300,
            f"${{IFS}}touch${{IFS}}{c}", "{{ 7*7 }}", "%(x)s", "\\", "'", "\""]


def test_fuzz_hostile_strings_at_every_boundary(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).parent))
    from sshd import SshLab, require_tools
    from test_deploy import make_bundle

    from keras_edge.device.contract import bundle as B

    require_tools()
    lab = SshLab(tmp_path / "lab")
    try:
        board = lab.start("board1")
        canary = tmp_path / "pwned"
        args_file = board.home / "args.txt"
        good = make_bundle(tmp_path, "good")
        capsys.readouterr()
        assert main(["deploy", str(good), "board1", "-F", str(lab.config)]) == 0
        # then the board's runner: it records the arguments it gets, NUL-separated, and fails
        runner = board.home / "keras-edge" / "venv" / "bin" / "keras-edge"
        runner.parent.mkdir(parents=True)
        runner.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {args_file}\necho 'error: unknown variant' >&2\nexit 2\n")
        runner.chmod(0o755)
        counts = Counts("hostile-strings", SEED, BUDGET_S - 5)
        start = time.monotonic()

        def case(what: str, argv: list, arrived: str | None = None) -> None:
            capsys.readouterr()
            try:
                rc = main([str(a) for a in argv])
            except BaseException as e:  # noqa: BLE001 - a bug
                counts.bugs += 1
                counts.note("bug", f"{what}: {type(e).__name__}: {e}")
                return
            _, err = capsys.readouterr()
            counts.cases += 1
            errors = [ln for ln in err.splitlines() if ln.startswith("error")]
            if canary.exists():
                counts.bugs += 1
                counts.note("bug", f"{what}: the canary was created")
                canary.unlink()
            elif "Traceback" in err or len(errors) > 1:
                counts.bugs += 1
                counts.note("bug", f"{what}: {err[-500:]}")
            elif arrived is not None and args_file.exists() and arrived in args_file.read_text().split("\0"):
                counts.results += 1          # reached the board as the very same string
                args_file.unlink()
            elif rc != 0 and len(errors) == 1:
                counts.clean_errors += 1
            else:
                counts.bugs += 1
                counts.note("bug", f"{what}: exit {rc}: {err[-300:]}")

        for k, s in enumerate(hostile(canary)):
            if time.monotonic() - start > counts.budget_s:
                break
            ssh = ["-F", lab.config, "--connect-timeout", "2"]
            case(f"host user {s!r}", ["rollback", "toy", f"{s}@board1", *ssh])
            # ProxyCommand=false: ssh never looks the name up (no DNS waits); the string still reaches ssh's argv
            case(f"host {s!r}", ["deploy", good, s, *ssh, "--ssh-option", "ProxyCommand=false"])
            case(f"rollback name {s!r}", ["rollback", s, "board1", *ssh])
            named = tmp_path / f"named{k}" / "toy"
            shutil.copytree(good, named)
            m = B.read_manifest(named)
            B.write_manifest(named, B.Manifest(**{**m.__dict__, "name": s}))
            case(f"bundle name {s!r} (deploy)", ["deploy", named, "board1", *ssh])
            case(f"bundle name {s!r} (bench --on)", ["bench", named, "--on", "board1", *ssh])
            relabelled = tmp_path / f"labels{k}" / "toy"
            shutil.copytree(good, relabelled)
            if "/" not in s and s not in ("", ".", ".."):
                try:
                    (relabelled / "labels.txt").rename(relabelled / s)
                    B.write_manifest(relabelled, B.Manifest(**{**m.__dict__, "labels": s}))
                    case(f"file name {s!r} (deploy)", ["deploy", relabelled, "board1", *ssh])
                except OSError:
                    pass
            case(f"bench --variant {s!r}", ["bench", good, "--on", "board1", "--variant", s, *ssh], arrived=s)
            case(f"ssh option {s!r}", ["bench", good, "--on", "board1", "--ssh-option", s, *ssh])
        if shutil.which("ansible-playbook", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"):
            ansible_strings(lab, board, good, hostile(canary), args_file, canary, tmp_path, counts)
        counts.seconds = time.monotonic() - start
        check(counts)
        assert counts.results >= 5, "no hostile string reached the board: the data path was not exercised"
    finally:
        lab.stop()
    assert not canary.exists()


def ansible_strings(lab, board, good: Path, strings: list[str], args_file: Path, canary: Path, tmp_path: Path,
                    counts: Counts) -> None:
    """Every hostile string at once as the board benchmark's arguments through the real bench playbook: each must
    reach the board's runner as itself (Ansible templated none of them)."""
    from keras_edge.device.contract import bundle as B
    from keras_edge.host.deploy import fleet
    from keras_edge.host.deploy.ssh import SshOptions

    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    pis:\n      hosts:\n        board1: {}\n")
    work = tmp_path / "ansible-work"
    (work / "results").mkdir(parents=True)
    extra = {"keras_edge_name": "toy", "keras_edge_version": B.content_hash(good), "keras_edge_hosts": "pis",
             "keras_edge_bench_args": strings, "keras_edge_results_dir": str(work / "results")}
    fleet.run_playbook("keras_edge_bench.yml", fleet.Inventory(inv, ssh=SshOptions(config=lab.config)), extra, work)
    got = args_file.read_text().split("\0")[3:-1] if args_file.exists() else []   # after bench, current, --json
    for s in strings:
        counts.cases += 1
        if canary.exists():
            counts.bugs += 1
            counts.note("bug", f"ansible bench argument {s!r}: the canary was created")
            canary.unlink()
        elif s in got:
            counts.results += 1
        else:
            counts.bugs += 1
            counts.note("bug", f"ansible bench argument {s!r} did not arrive as itself: {got[:5]}")
