"""A newcomer's first hour (issue 26): from `make demo` to a model of their own without guessing.

Each test holds one thing that got in the way: the command line's manners (bare `keras-edge`, a typo,
shell completion), wrong paths failing before TensorFlow starts, the presets defined where a user
looks, `--json` output that parses as documented, the report's legend and budget, report.png's labels,
and what the demo says at its end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_edge.cli import COMMANDS, main

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_", "_KERAS_EDGE"))}


def _cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "keras_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env or ENV)


# --- the command group ---------------------------------------------------------------------------------

def test_bare_keras_edge_prints_the_help_as_click_does():
    proc = _cli()
    assert proc.returncode in (0, 2)
    text = proc.stdout + proc.stderr
    assert "error:" not in text
    lines = text.splitlines()
    assert lines[0].startswith("Usage: keras-edge") and "Commands:" in lines
    listed = {ln.split()[0] for ln in text.split("Commands:")[1].splitlines() if ln.strip()}
    assert listed == set(COMMANDS)


def test_a_mistyped_command_gets_a_suggestion(capsys):
    assert main(["conver"]) == 2
    assert capsys.readouterr().err.strip() == ("error: no such command 'conver'; did you mean convert? "
                                              "(see keras-edge --help)")
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the commands are bench, convert," in err


def test_shell_completion_script_and_completions():
    script = _cli(env={**ENV, "_KERAS_EDGE_COMPLETE": "bash_source"})
    assert script.returncode == 0, script.stderr
    assert "_keras_edge_completion()" in script.stdout and "complete -o nosort -F _keras_edge_completion keras-edge" \
        in script.stdout
    words = _cli(env={**ENV, "_KERAS_EDGE_COMPLETE": "bash_complete", "COMP_WORDS": "keras-edge con", "COMP_CWORD": "1"})
    assert words.stdout.split() == ["plain,convert"]
    flags = _cli(env={**ENV, "_KERAS_EDGE_COMPLETE": "bash_complete", "COMP_WORDS": "keras-edge convert --cal",
                      "COMP_CWORD": "2"})
    assert "plain,--calib" in flags.stdout.split()


# --- wrong paths fail before TensorFlow is imported ------------------------------------------------------

FAST = """
import contextlib, io, json, sys
from keras_edge.cli import main
rows = []
for args in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(args)
    rows.append({"args": args, "rc": rc, "err": err.getvalue(), "tensorflow": "tensorflow" in sys.modules})
print(json.dumps(rows))
"""


def test_wrong_paths_fail_before_tensorflow_is_imported(digits_demo, tmp_path):
    model, train = str(digits_demo.model), str(digits_demo.train)
    image = str(next(Path(train).rglob("*.png")))
    missing, empty = str(tmp_path / "missing.keras"), tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["convert", missing, "-o", str(tmp_path / "b"), "--calib", train], "missing.keras: no such model file"),
        (["convert", model, "-o", str(tmp_path / "b"), "--calib", image], "is not a folder (one image)"),
        (["convert", model, "-o", str(tmp_path / "b"), "--calib", str(empty)], "contains no images"),
        (["convert", model, "-o", str(tmp_path / "b"), "--calib", train, "--eval", str(tmp_path / "nope")],
         "nope: no such folder"),
        (["convert", model, "-o", str(tmp_path / "b"), "--calib", str(tmp_path / "x.npz")], "x.npz: no such file"),
        (["prune", missing, "-o", str(tmp_path / "p.keras"), "--data", train], "missing.keras: no such model file"),
        (["prune", model, "-o", str(tmp_path / "p.keras"), "--data", str(tmp_path / "nope")], "nope: no such folder"),
        (["distill", "--teacher", model, "--student", missing, "-o", str(tmp_path / "d.keras"), "--data", train],
         "missing.keras: no such model file"),
        (["distill", "--teacher", model, "--student", model, "-o", str(tmp_path / "d.keras"), "--data", image],
         "is not a folder (one image)"),
    ]
    proc = subprocess.run([sys.executable, "-c", FAST, json.dumps([args for args, _ in cases])], capture_output=True,
                          text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for row, (_, expected) in zip(rows, cases):
        assert row["rc"] == 2, row
        assert row["err"].startswith("error: ") and row["err"].count("\n") == 1, row
        assert expected in row["err"], row
        assert not row["tensorflow"], f"{row['args'][:2]} imported TensorFlow before failing"
    assert not (tmp_path / "b").exists()


# --- the presets, defined where a user looks -------------------------------------------------------------

def test_preprocess_presets_are_defined_in_help_and_readme():
    from keras_edge.device.contract.preprocess import PRESETS, describe_preset, presets_text

    assert describe_preset("tf") == "x/127.5 - 1 → [-1, 1]"
    assert describe_preset("unit") == "x/255 → [0, 1]" and describe_preset("raw") == "x → [0, 255]"
    assert "RGB" in describe_preset("torch") and "BGR" in describe_preset("caffe")
    for command in ("convert", "prune", "run", "bench"):
        proc = _cli(command, "--help")
        flat = " ".join(proc.stdout.split())
        for name in PRESETS:
            assert f"{name}: {describe_preset(name)}" in flat, (command, name)
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    assert all(f"`{name}`: `{describe_preset(name)}`" in readme for name in PRESETS)
    assert presets_text().count(";") == len(PRESETS) - 1
