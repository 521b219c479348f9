"""Board kinds and their cost tables, the XNNPACK partition walk, the default's basis and the profile records.

Pure logic on hand-made ops and tables; the real models are in tests/e2e/test_board_target.py and
tests/device/test_profile.py, and the tables' prediction error in `make bench` (benchmarks/board.py).
"""

from __future__ import annotations

import json

import pytest

from keras_edge.device.contract.bundle import Variant, VariantStatus
from keras_edge.device.contract.errors import BundleError, ConfigError, DataError
from keras_edge.device.profile.boards import DATA, USER_ENV, load, predict, refine
from keras_edge.device.profile.graph import OpInfo, TensorInfo, claimed_nodes, why_not
from keras_edge.host.convert.choose import Basis, BoardTimes, choose
from keras_edge.host.convert.target import BoardPredictions
from keras_edge.host.report import Report
from keras_edge.host.report.contract import ProfileRun


def t(i, shape, dtype="float32", const=False):
    return TensorInfo(i, f"t{i}", tuple(shape), dtype, const)


def conv(i, dtype="float32", xnnpack=True):
    w = "int8" if dtype in ("int8", "int16") else dtype
    return OpInfo(i, "CONV_2D", (t(10 * i, (1, 56, 56, 64), dtype), t(10 * i + 1, (64, 3, 3, 64), w, True)),
                  (t(10 * i + 2, (1, 56, 56, 64), dtype),), xnnpack)


def test_every_shipped_board_names_its_sources_and_how_far_to_trust_it():
    table = load()
    assert {"pi4", "pi5", "pi3", "pizero2"} <= set(table.boards)
    for b in table.boards.values():
        assert b.ns_per_mac["f32"] > 0 and b.ns_per_mac["qs8"] > 0 and 0 < b.band <= 2 and b.cores >= 1
        assert b.basis in ("fit", "derived") and b.sources and all(s in table.sources for s in b.sources)
    assert table.published and all(f["source"] in table.sources for f in table.published)
    data = json.loads(DATA.read_text())
    fitted = {b for b, v in data["boards"].items() if v["basis"] == "fit"}
    held = {e["board"] for e in data["fit"]["held_out_errors"]}
    assert fitted <= held      # every fitted board has figures it was not fitted on, with their error


def test_int8_is_cheaper_than_fp32_on_a_pi4_and_fewer_threads_are_slower():
    table = load()
    pi4 = table.board("pi4")
    f32 = predict([conv(0), conv(1)], pi4, table.shape)
    q8 = predict([conv(0, "int8"), conv(1, "int8")], pi4, table.shape)
    assert q8.ms < f32.ms and f32.basis == pi4.basis and f32.threads == pi4.cores
    assert predict([conv(0)], pi4, table.shape, threads=1).ms > predict([conv(0)], pi4, table.shape).ms
    folded = OpInfo(5, "DEQUANTIZE", (t(50, (64, 3, 3, 64), "float16", True),), (t(51, (64, 3, 3, 64)),), True)
    assert predict([folded], pi4, table.shape).ms == 0.0   # constants only: folded at load


def test_a_users_board_file_adds_a_kind_and_a_broken_one_is_one_line(tmp_path, monkeypatch):
    user = tmp_path / "boards.json"
    user.write_text(json.dumps({"format": "keras-edge-boards/1", "boards": {"rock5b": {
        "name": "Radxa ROCK 5B", "cores": 4, "ns_per_mac": {"f32": 0.02, "qs8": 0.008}, "band": 0.3,
        "match": {"model": "ROCK 5B"}}}}))
    monkeypatch.setenv(USER_ENV, str(user))
    table = load()
    assert table.board("rock5b").name == "Radxa ROCK 5B" and "pi4" in table.boards
    assert table.kind_of({"model": "Radxa ROCK 5B", "arch": "aarch64"}).kind == "rock5b"
    user.write_text(json.dumps({"format": "keras-edge-boards/1", "boards": {"x": {"ns_per_mac": {"f32": -1, "qs8": 1}}}}))
    with pytest.raises(DataError, match="needs positive ns_per_mac"):
        load()
    user.write_text("{")
    with pytest.raises(DataError, match="is not valid JSON"):
        load()
    monkeypatch.delenv(USER_ENV)
    with pytest.raises(ConfigError, match="'pi9' is not a known board kind; choose one of: "):
        load().board("pi9")


def test_bench_on_runs_refine_a_board_toward_what_it_measured():
    table = load()
    pi4 = table.board("pi4")
    ops = [conv(0, "int8"), conv(1, "int8")]
    before = predict(ops, pi4, table.shape).ms
    refined = refine(pi4, table.shape, [(ops, before * 2, pi4.cores)] * 3)
    after = predict(ops, refined, table.shape).ms
    assert before < after < before * 2 and refined.basis == "refined"
    assert refined.ns_per_mac["f32"] == pi4.ns_per_mac["f32"]     # only the base the runs measured moves


def test_the_xnnpack_partition_walk_and_the_reasons_for_the_rest():
    # 0: conv (t0 -> t1), 1: custom op (t1 -> t2), 2: add (t2 -> t3); XNNPACK took 0 and 2 in two partitions
    originals = [{"index": 0, "op_name": "CONV_2D", "inputs": [0, 9], "outputs": [1]},
                 {"index": 1, "op_name": "MY_OP", "inputs": [1], "outputs": [2]},
                 {"index": 2, "op_name": "ADD", "inputs": [2, 2], "outputs": [3]}]
    delegates = [{"index": 3, "op_name": "DELEGATE", "inputs": [0, 9], "outputs": [1]},
                 {"index": 4, "op_name": "DELEGATE", "inputs": [2], "outputs": [3]}]
    produced = {1: 0, 2: 1, 3: 2}
    assert claimed_nodes(originals, delegates, produced) == {0, 2}
    assert why_not(conv(0, "int16")).startswith("int16 activations")
    custom = OpInfo(1, "MY_OP", (t(1, (1, 4)),), (t(2, (1, 4)),), False)
    assert why_not(custom) == "MY_OP has no XNNPACK kernel"
    soft = OpInfo(2, "SOFTMAX", (t(1, (1, 10), "int8"),), (t(2, (1, 10), "int8"),), False)
    assert why_not(soft) == "XNNPACK runs SOFTMAX on float tensors only"


def _row(name, ms, loss=0.0):
    return Variant(name, name, VariantStatus.OK, file=f"{name}.tflite", bytes=1000,
                   metrics={"accuracy": 0.99 - loss, "agreement": 1.0, "latency_ms": ms})


def test_the_default_rests_on_the_board_measured_then_predicted_then_the_workstation():
    rows = [_row("fp16", 1.0), _row("int8", 2.0)]          # the workstation prefers fp16
    predicted = BoardPredictions("pi4", "Raspberry Pi 4", {"fp16": 46.0, "int8": 17.0}, 0.2, "fit")
    c = choose(rows, 0.99, 0.01, predicted=predicted)
    assert (c.name, c.basis) == ("int8", Basis.BOARD_PREDICTED) and "predicted for board pi4" in c.reason
    measured = BoardTimes("raspberry-pi-4", "2026-12-01", {"fp16": 30.0, "int8": 40.0})
    c = choose(rows, 0.99, 0.01, board=measured, predicted=predicted)
    assert (c.name, c.basis) == ("fp16", Basis.BOARD_MEASURED)
    c = choose(rows, 0.99, 0.01)
    assert (c.name, c.basis) == ("fp16", Basis.WORKSTATION)
    partial = BoardPredictions("pi4", "Raspberry Pi 4", {"int8": 17.0}, 0.2, "fit")
    assert choose(rows, 0.99, 0.01, predicted=partial).basis is Basis.WORKSTATION   # must cover every candidate


def test_profile_runs_are_kept_per_board_kind_and_variant_and_survive_a_reconvert():
    data = {"format": "keras-edge-profile/1", "target": "b", "model": "int8.tflite", "variant": "int8",
            "runtime": "ai_edge_litert 2.3.0", "threads": 4, "rows": []}
    a = ProfileRun("raspberry-pi-4-aarch64-debian", "pi@a", "v1", "2026-12-01T00:00:00+00:00", "int8", {}, data)
    b = ProfileRun("raspberry-pi-4-aarch64-debian", "pi@b", "v1", "2026-12-02T00:00:00+00:00", "int8", {}, data)
    report = Report(name="digits").with_profile(a).with_profile(b)
    assert list(report.profiles) == ["raspberry-pi-4-aarch64-debian/int8"] and report.profiles[a.key].host == "pi@b"
    again = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again == report and again.profiles[a.key].profile().threads == 4
    assert Report(name="digits").with_boards_of(again).profiles == report.profiles
    newer = ProfileRun(a.fingerprint, "pi@a", "v1", a.measured, "int8", {}, {**data, "format": "keras-edge-profile/9"})
    with pytest.raises(BundleError, match="has format 'keras-edge-profile/9'; this keras-edge reads"):
        newer.profile()
