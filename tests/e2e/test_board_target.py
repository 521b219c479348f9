"""Deciding for a named board kind (`convert --board`), and `profile` on the workstation.

The digits CNN trained in this session is converted once with ``--board pi4``: every variant carries its
predicted Pi 4 latency, and the manifest and the report say what the default rests on. Predictions are
the cost table's arithmetic, not timings; no test here asserts a speed.
"""

from __future__ import annotations

import json

import pytest

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B
from keras_edge.device.profile.boards import load


@pytest.fixture(scope="module")
def pi4_bundle(digits_demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / "digits"
    code = main(["convert", str(digits_demo.model), "-o", str(out), "--calib", str(digits_demo.train),
                 "--eval", str(digits_demo.eval), "--variants", "fp32,int8,int16x8", "--calib-samples", "60",
                 "--eval-samples", "60", "--board", "pi4", "--json"])
    assert code == 0
    return out


def test_convert_board_records_predictions_and_the_basis_of_the_default(pi4_bundle, capsys):
    capsys.readouterr()
    m = B.read_manifest(pi4_bundle)
    assert m.target_board == "pi4" and m.default_basis == "board-predicted"
    assert "predicted for board pi4" in m.default_reason and "not measured there" in m.default_reason
    table = load()
    for v in m.variants:
        pred = v.metrics["board"]
        assert pred["board"] == "pi4" and pred["threads"] == table.board("pi4").cores
        assert pred["low_ms"] < pred["ms"] < pred["high_ms"]
        assert pred["basis"] == table.board("pi4").basis
    by = {v.name: v.metrics["board"] for v in m.variants}
    # int8 runs on XNNPACK's qs8 kernels, int16x8 on builtin int16 ones: the table prices them apart
    # (and its float softmax head, DEQUANTIZE + SOFTMAX over 10 logits, priced as f32 ops: on this 0.6 ms model
    # their fixed per-op cost is a few percent, far below the int8 body)
    fams = by["int8"]["by_family"]
    assert set(fams) <= {"xnnpack-qs8", "builtin-int8", "xnnpack-f32"} and "xnnpack-qs8" in fams
    assert fams.get("xnnpack-f32", 0) < fams["xnnpack-qs8"] / 5
    assert "builtin-int16" in by["int16x8"]["by_family"]
    report = json.loads((pi4_bundle / B.REPORT_JSON).read_text())
    assert report["target"]["basis"] == "board-predicted" and report["target"]["board"] == "pi4"
    assert set(report["target"]["predicted_ms"]) == {v.name for v in m.variants}
    md = (pi4_bundle / B.REPORT_MD).read_text()
    assert "## Latency on the target" in md and "predicted pi4 p50 ms (band)" in md
    assert "The default was chosen on: **board-predicted**" in md


def test_an_unknown_board_kind_is_one_error_line_before_any_work(digits_demo, tmp_path, capsys):
    code = main(["convert", str(digits_demo.model), "-o", str(tmp_path / "b"), "--calib", str(digits_demo.train),
                 "--board", "pi9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --board 'pi9' is not a known board kind; choose one of: ")
    assert "pi4" in err[-1] and not (tmp_path / "b").exists()


def test_profile_on_the_workstation_with_a_plot(pi4_bundle, tmp_path, capsys):
    png = tmp_path / "ops.png"
    code = main(["profile", str(pi4_bundle), "--variant", "int16x8", "--threads", "1", "--passes", "3",
                 "--min-seconds", "0", "--plot", str(png), "--top", "4"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot: {png}" in out.err
    assert "no: int16 activations (XNNPACK has no int16x8 kernels)" in out.out
    assert "XNNPACK runs 0 of" in out.out


def test_bench_on_runs_of_the_kind_refine_its_table_into_the_users_file(pi4_bundle, tmp_path, monkeypatch, capsys):
    import shutil

    from keras_edge.host.report import BoardRun, read_report, write_report_json

    bundle = tmp_path / "digits"
    shutil.copytree(pi4_bundle, bundle)
    predicted = B.read_manifest(bundle).variant("int8").metrics["board"]["ms"]
    facts = {"model": "Raspberry Pi 4 Model B Rev 1.4", "arch": "aarch64", "os_id": "debian"}
    run = BoardRun("raspberry-pi-4-model-b-rev-1-4-aarch64-debian", "pi@pi4", B.content_hash(bundle),
                   "2026-12-01T00:00:00+00:00", facts,
                   {"results": [{"variant": "int8", "threads": 4, "median_ms": predicted * 3, "accelerator": "cpu"}]})
    write_report_json(bundle, read_report(bundle).with_board(run))
    before = load().board("pi4").ns_per_mac["qs8"]
    monkeypatch.setenv("KERAS_EDGE_BOARDS", str(tmp_path / "boards.json"))
    assert main(["boards", "--refine", "pi4", str(bundle)]) == 0
    assert "pi4: refined on 1 run(s)" in capsys.readouterr().out
    mine = load().board("pi4")
    assert mine.basis == "refined" and mine.ns_per_mac["qs8"] > before
    assert main(["boards", "--refine", "pi5", str(bundle)]) == 2          # a Pi 4's runs say nothing of a Pi 5
    assert "holds a bench --on run on a board of kind pi5" in capsys.readouterr().err
