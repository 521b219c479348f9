"""`keras-edge prune` and `keras-edge distill` on the digits demo model and its image folders."""

from __future__ import annotations

import contextlib
import io
import json
import re

import numpy as np
import pytest

from keras_edge.cli import main


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def pruned_channels(digits_demo, tmp_path_factory):
    """The demo model channel-pruned by the CLI (fine-tuned one epoch), with its JSON summary and stderr."""
    out = tmp_path_factory.mktemp("prune") / "pruned.keras"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["prune", str(digits_demo.model), "-o", str(out), "--method", "channels", "--sparsity", "0.5",
                     "--data", str(digits_demo.train), "--epochs", "1", "--json"])
    assert code == 0, stderr.getvalue()
    return out, json.loads(stdout.getvalue()), stderr.getvalue()


def test_prune_channels_writes_a_smaller_model_and_a_json_summary(pruned_channels):
    import keras

    out, summary, stderr = pruned_channels
    assert summary["method"] == "channels" and summary["output"] == str(out)
    assert summary["params_after"] < summary["params_before"] and summary["flops_after"] < summary["flops_before"]
    assert [l["after"] for l in summary["layers"]] == [16, 32, 64]  # the demo's 32/64/128 filters, halved
    assert len(summary["skipped"]) == 1 and "model output" in summary["skipped"][0]["reason"]
    assert summary["accuracy_after"] > 0.8
    assert re.search(r"^\d+/\d+ .*loss: [\d.]+", stderr, re.M), "fine-tuning progress is shown on stderr"
    model = keras.models.load_model(out, safe_mode=True)
    assert model.count_params() == summary["params_after"]


def test_prune_magnitude_reports_the_reached_sparsity(digits_demo, tmp_path, capsys):
    import keras

    out = tmp_path / "sparse.keras"
    code, stdout, err = cli(capsys, "prune", digits_demo.model, "-o", out, "--method", "magnitude",
                            "--sparsity", "0.6", "--data", digits_demo.train, "--epochs", "1", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert abs(summary["achieved"] - 0.6) <= 0.01 and summary["params_after"] == summary["params_before"]
    kernels = [np.asarray(l.kernel) for l in keras.models.load_model(out).layers if hasattr(l, "kernel")]
    zeros = sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)
    assert abs(zeros - 0.6) <= 0.01


def test_prune_prints_a_readable_table_without_json(digits_demo, tmp_path, capsys):
    code, stdout, err = cli(capsys, "prune", digits_demo.model, "-o", tmp_path / "p.keras", "--method", "channels",
                            "--sparsity", "0.25", "--epochs", "0")
    assert code == 0, err
    assert "channels: 25.0% of prunable channels removed" in stdout and "kept whole:" in stdout
    assert f"wrote {tmp_path / 'p.keras'}" in stdout


def test_distill_trains_the_pruned_student(digits_demo, pruned_channels, tmp_path, capsys):
    import keras

    student, summary, _ = pruned_channels
    out = tmp_path / "distilled.keras"
    code, stdout, err = cli(capsys, "distill", "--teacher", digits_demo.model, "--student", student, "-o", out,
                            "--data", digits_demo.train, "--epochs", "1", "--temperature", "3", "--alpha", "0.7",
                            "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["temperature"] == 3.0 and result["alpha"] == 0.7
    assert result["student_accuracy_after"] > 0.8 and result["teacher_accuracy"] > 0.9
    assert keras.models.load_model(out).count_params() == summary["params_after"]


@pytest.mark.parametrize(("args", "message"), [
    (["--sparsity", "1.5"], "error: --sparsity 1.5 is outside (0, 1); give the fraction to remove"),
    (["--sparsity", "0"], "error: --sparsity 0.0 is outside (0, 1)"),
    (["--sparsity", "0.5"], "error: --data is needed: fine-tuning needs labeled data and none was given"),
    (["--sparsity", "0.5", "--epochs", "0", "-o", "{tmp}/out.h5"], "error: Invalid value for '-o' / '--out': {tmp}/out.h5 does not end in .keras"),
])
def test_bad_options_are_one_line_and_write_nothing(digits_demo, tmp_path, capsys, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = ["-o", str(tmp_path / "out.keras")] if "-o" not in args else []
    code, _, err = cli(capsys, "prune", digits_demo.model, "--method", "channels", *out, *args)
    assert code == 2 and one_error_line(err).startswith(message.replace("{tmp}", str(tmp_path)))
    assert list(tmp_path.iterdir()) == []


def test_data_without_class_subfolders_has_no_labels(digits_demo, tmp_path, capsys, write_images):
    flat = write_images(tmp_path / "flat", {"": 4}, size=32)
    code, _, err = cli(capsys, "prune", digits_demo.model, "-o", tmp_path / "o.keras", "--method", "magnitude",
                       "--sparsity", "0.5", "--data", flat)
    assert code == 2 and "has no class subfolders, so its images have no labels" in one_error_line(err)
    assert not (tmp_path / "o.keras").exists()


def test_data_with_the_wrong_number_of_classes_is_refused(digits_demo, tmp_path, capsys, write_images):
    three = write_images(tmp_path / "three", {"a": 2, "b": 2, "c": 2}, size=32)
    code, _, err = cli(capsys, "prune", digits_demo.model, "-o", tmp_path / "o.keras", "--method", "channels",
                       "--sparsity", "0.5", "--data", three)
    assert code == 2 and "has 3 class subfolder(s) but the model has 10 outputs" in one_error_line(err)


def test_missing_model_file(tmp_path, capsys):
    code, _, err = cli(capsys, "prune", tmp_path / "nope.keras", "-o", tmp_path / "o.keras", "--method", "channels",
                       "--sparsity", "0.5", "--epochs", "0")
    assert code == 2 and "nope.keras: no such model file" in one_error_line(err)


def test_a_model_it_cannot_prune_leaves_the_previous_output_intact(tmp_path, capsys):
    import keras

    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                          keras.layers.Dense(10, activation="softmax")], name="linear")
    m.save(tmp_path / "linear.keras")
    out = tmp_path / "out.keras"
    out.write_bytes(b"previous result")
    code, _, err = cli(capsys, "prune", tmp_path / "linear.keras", "-o", out, "--method", "channels",
                       "--sparsity", "0.5", "--epochs", "0")
    assert code == 2 and "nothing in model 'linear' can be channel-pruned" in one_error_line(err)
    assert out.read_bytes() == b"previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linear.keras", "out.keras"]


def test_distill_refuses_a_student_with_another_output(digits_demo, tmp_path, capsys):
    import keras

    s = keras.Sequential([keras.Input((32, 32, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    s.save(tmp_path / "s.keras")
    code, _, err = cli(capsys, "distill", "--teacher", digits_demo.model, "--student", tmp_path / "s.keras",
                       "-o", tmp_path / "o.keras", "--data", digits_demo.train, "--epochs", "1")
    assert code == 2 and "differs from the student's" in one_error_line(err)
