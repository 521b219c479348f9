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
    assert err.count("\n") == 1 and "the commands are bench, boards, convert," in err


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


# --- --json prints what each command's help says ---------------------------------------------------------

def test_every_json_output_parses_as_documented(digits_bundle, digits_demo, tmp_path):
    bundle = str(digits_bundle.bundle)
    images = sorted(Path(digits_demo.eval).rglob("*.png"))[:3]
    run = _cli("run", bundle, *images, "--json")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()   # JSON Lines: one object per input, in input order
    assert [json.loads(ln)["source"] for ln in lines] == [str(p) for p in images]
    assert "inputs ran on" in run.stderr   # the summary stays on stderr
    for args, key in ((("verify", bundle), "variants"), (("bench", bundle, "--runs", "5", "--min-seconds", "0"), "results"),
                      (("doctor",), "runtimes")):
        proc = _cli(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        (line,) = proc.stdout.splitlines()   # one object on one line
        assert key in json.loads(line), args
    report = _cli("report", bundle, "--json")
    assert report.returncode == 0 and report.stdout.startswith("{\n  ")   # one pretty-printed document
    assert json.loads(report.stdout)["name"] == "digits"
    # an error: the usual line on stderr, and an object on stdout so that stdout still parses
    for args in (("verify", tmp_path / "nope"), ("run", bundle, tmp_path / "nope.png"),
                 ("convert", tmp_path / "m.keras", "-o", tmp_path / "b", "--calib", digits_demo.train)):
        proc = _cli(*args, "--json")
        assert proc.returncode != 0 and proc.stderr.splitlines()[-1].startswith("error: ")
        err = json.loads(proc.stdout.splitlines()[-1])
        assert err == {"error": proc.stderr.splitlines()[-1][len("error: "):], "exit_code": proc.returncode}


def test_each_command_help_says_what_json_prints():
    with_json = 0
    for command in COMMANDS:
        flat = " ".join(_cli(command, "--help").stdout.split())
        if "--json" not in flat:   # serve answers over HTTP (its /infer and /stats.json are JSON); nothing to print
            assert command == "serve", f"{command} has no --json"
            continue
        with_json += 1
        assert "--json JSON on stdout: " in flat, command
    assert with_json == len(COMMANDS) - 1
    assert "JSON Lines" in " ".join(_cli("run", "--help").stdout.split())


# --- report.png: labels that can be read -----------------------------------------------------------------

def _boxes_overlap(a, b) -> bool:
    return not (a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0)


def test_report_png_labels_and_ticks_do_not_overlap(digits_bundle):
    import matplotlib.pyplot as plt

    from keras_edge.host.report.plot import figure

    report = digits_bundle.report.to_dict()
    fig, labels = figure(report)
    try:
        renderer = fig.canvas.get_renderer()
        named = {name for t in labels for name in t.get_text().split(", ")}
        assert named == {v["name"] for v in report["variants"] if v["status"] == "ok"}
        boxes = [t.get_window_extent(renderer) for t in labels]
        frame = fig.axes[0].get_window_extent(renderer)
        for i, a in enumerate(boxes):
            assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
            for b in boxes[i + 1:]:
                assert not _boxes_overlap(a, b), (labels[i].get_text(), a, b)
        for ax in fig.axes:
            ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
            ticks = [b for b in ticks if frame.x0 - 50 <= b.x0]   # those drawn
            for i, a in enumerate(ticks):
                for b in ticks[i + 1:]:
                    assert not _boxes_overlap(a, b), (ax.get_title(), a, b)
    finally:
        plt.close(fig)


# --- the demo's end and a rerun --------------------------------------------------------------------------

def test_a_rerun_of_the_demo_loads_the_model_and_says_so(digits_demo):
    from keras_edge.demo import prepare

    said: list[str] = []
    again = prepare(Path(digits_demo.model).parent, log=said.append)
    assert said == [f"demo: loading the model trained before, {digits_demo.model} (delete it to train again)"]
    assert again.keras_accuracy == digits_demo.keras_accuracy


def test_the_demo_ends_with_its_report_and_commands_that_run(digits_bundle, digits_demo, capsys):
    import shlex

    from keras_edge.demo import closing_lines, command_hint

    lines = closing_lines(digits_bundle.bundle, digits_demo, 12.3)
    assert lines[0] == f"bundle: {digits_bundle.bundle}   (12s in all)"
    assert str(digits_bundle.bundle / "report.md") in lines[1] and str(digits_bundle.bundle / "report.png") in lines[1]
    assert (digits_bundle.bundle / "report.md").is_file() and (digits_bundle.bundle / "report.png").is_file()
    exe, activate = command_hint()
    assert exe == "keras-edge" or Path(exe).is_file()
    if activate:   # not on PATH: the line says how to activate the environment
        assert lines[2].startswith(f"next: `{activate}`") and Path(activate.split()[1]).is_file()
    commands = [shlex.split(ln)[1:] for ln in lines if ln.startswith("  keras-edge ")]
    assert [c[0] for c in commands] == ["run", "verify", "bench"]
    for args in commands:
        extra = ["--runs", "3", "--min-seconds", "0"] if args[0] == "bench" else []
        assert main([*args, *extra]) == 0, capsys.readouterr().err
        assert str(digits_bundle.bundle) in " ".join(args)


def test_prune_prints_no_tensorflow_startup_logs(digits_demo, tmp_path):
    proc = _cli("prune", digits_demo.model, "-o", tmp_path / "p.keras", "--method", "magnitude", "--sparsity", "0.5",
                "--epochs", "0")
    assert proc.returncode == 0, proc.stderr
    noise = [ln for ln in proc.stderr.splitlines() if any(k in ln for k in ("oneDNN", "cuda", "TF_ENABLE",
                                                                            "cpu_feature_guard", "This TensorFlow binary",
                                                                            "absl::"))]
    assert not noise, noise
    assert (tmp_path / "p.keras").is_file()


def test_readme_explains_the_report_columns_and_what_json_prints():
    from keras_edge.host.report.render import LEGEND

    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    for column, text in LEGEND.items():
        assert f"- `{column}`: {' '.join(text.split())}" in readme, column
    for command in COMMANDS:
        assert f"| `{command}` |" in readme, command
    assert "_KERAS_EDGE_COMPLETE=bash_source keras-edge" in readme
