"""report.json, the second contract: typed records, a format version, board runs that survive a reconvert."""

from __future__ import annotations

import json

import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract.errors import BundleError
from keras_edge.host.report import REPORT_FORMAT, BoardRun, Report, VariantRecord, read_report, write_report_json
from keras_edge.host.report.render import markdown, pruning_rows


def _run(fp: str, measured: str, ms: dict[str, tuple[int, float]]) -> BoardRun:
    results = [{"variant": v, "threads": t, "median_ms": m} for v, (t, m) in ms.items()]
    return BoardRun(fp, "pi@" + fp, "v1", measured, {"model": fp}, {"results": results})


REPORT = Report(name="digits", default="int8", default_reason="fastest", keras={"accuracy": 0.99},
                notes=("a note",), variants=(VariantRecord("int8", "int8", "ok", "", 1000, {"accuracy": 0.99}),),
                boards={"pi4@pi@pi4": _run("pi4", "2026-12-01T00:00:00+00:00", {"int8": (4, 2.0)})})


def test_round_trip_keeps_every_field(tmp_path):
    write_report_json(tmp_path, REPORT)
    data = json.loads((tmp_path / B.REPORT_JSON).read_text())
    assert data["format"] == REPORT_FORMAT
    assert read_report(tmp_path) == REPORT


def test_a_report_written_before_the_version_reads_as_version_one(tmp_path):
    legacy = {k: v for k, v in REPORT.to_dict().items() if k != "format"}
    (tmp_path / B.REPORT_JSON).write_text(json.dumps(legacy))
    assert read_report(tmp_path) == REPORT


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not valid JSON"), ("[1, 2]", "is not a JSON object"),
    ('{"format": "keras-edge-report/9"}', "has format 'keras-edge-report/9'"),
    ('{"variants": [{"mode": "x"}]}', "is not a keras-edge report"),
])
def test_a_broken_report_is_one_clear_error(tmp_path, text, message):
    (tmp_path / B.REPORT_JSON).write_text(text)
    with pytest.raises(BundleError, match=message):
        read_report(tmp_path)


def test_no_report_is_none(tmp_path):
    assert read_report(tmp_path) is None


def test_board_runs_carry_over_and_the_latest_decides():
    newer = _run("pi5", "2026-12-02T00:00:00+00:00", {"int8": (1, 9.0), "fp32": (4, 3.0)})
    fresh = Report(name="digits").with_board(newer)
    merged = fresh.with_boards_of(REPORT)
    assert set(merged.boards) == {"pi4@pi@pi4", "pi5@pi@pi5"}   # board kind @ host: identical boards do not collide
    assert merged.latest_board() is newer
    # the highest thread count measured wins per variant
    run = _run("x", "t", {"int8": (1, 9.0)})
    run = BoardRun(run.fingerprint, run.host, run.version, run.measured, {}, {"results": [
        {"variant": "int8", "threads": 1, "median_ms": 9.0}, {"variant": "int8", "threads": 4, "median_ms": 3.0},
        {"variant": "fp32", "threads": 4, "median_ms": 5.0, "error": "failed"}]})
    assert run.latencies() == {"int8": 3.0}


def test_the_pruning_curve_renders_with_the_chosen_row_marked():
    point = lambda level, drop, within: {"level": level, "achieved": level, "params": 10, "flops": 100, "int8_ms": 0.1,  # noqa: E731
                                         "speedup": 1 + level, "int8_accuracy": 0.99 - drop, "drop": drop,
                                         "within": within, "epochs": 2}
    curve = {"budget": 0.01, "base": point(0.0, 0.0, True), "points": [point(0.3, 0.005, True), point(0.6, 0.03, False)],
             "chosen": point(0.3, 0.005, True), "verdict": "chose 30%", "distill": "off", "n_val": 300,
             "interval_pp": 1.1}
    rows = pruning_rows(curve)
    assert "| **30%** |" in "\n".join(rows) and "| 60% |" in "\n".join(rows) and rows[-1] == "chose 30%"
    md = markdown(Report(name="d", variants=REPORT.variants, pruning=curve).to_dict())
    assert "## Pruning to the accuracy budget" in md


def test_the_default_is_spelled_out_in_the_table():
    from keras_edge.host.report.render import table

    text = table(REPORT.to_dict())
    assert "ok (default)" in text and "*" not in text
