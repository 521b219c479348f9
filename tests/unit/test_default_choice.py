"""The default variant: fastest within the accuracy budget, by board measurements when they exist."""

from __future__ import annotations

from keras_edge.device.contract.bundle import Variant, VariantStatus
from keras_edge.host.convert import BoardTimes, choose_default


def row(name, acc, ms, size=1000, status=VariantStatus.OK):
    return Variant(name, name, status, file=f"{name}.tflite", bytes=size,
                   metrics={"accuracy": acc, "agreement": 1.0, "latency_ms": ms})


ROWS = [row("fp32", 0.99, 1.00, 4000), row("fp16", 0.99, 0.90, 2000), row("int8", 0.985, 0.50, 1000),
        row("dynamic", 0.95, 0.10, 1000), row("broken", 0.99, 0.01, 1000, VariantStatus.VALIDATION_FAILED)]


def test_fastest_within_budget_on_the_workstation():
    name, why = choose_default(ROWS, keras_acc=0.99, max_drop=0.01)
    assert name == "int8"  # dynamic is faster but drops 4 pp; the broken one never counts
    assert "side by side on the workstation" in why
    assert "budget of 1.00 pp (its accuracy drop: +0.50 pp)" in why   # budget and drop in one unit


def test_a_tight_budget_picks_the_float_variant_and_ties_go_to_the_smaller_file():
    rows = ROWS[:2] + [row("fp16b", 0.99, 0.93, 1500)]
    name, why = choose_default(rows, keras_acc=0.99, max_drop=0.0)
    assert name == "fp16b" and "within 5%" in why


def test_board_measurements_decide_when_they_cover_every_candidate():
    board = BoardTimes("raspberry-pi-4", "2026-11-26", {"fp32": 40.0, "fp16": 45.0, "int8": 55.0, "dynamic": 9.0})
    name, why = choose_default(ROWS, keras_acc=0.99, max_drop=0.01, board=board)
    assert name == "fp32" and "on board raspberry-pi-4" in why


def test_partial_board_coverage_falls_back_to_the_workstation():
    board = BoardTimes("pi", "2026-11-26", {"fp32": 40.0})
    name, why = choose_default(ROWS, keras_acc=0.99, max_drop=0.01, board=board)
    assert name == "int8" and "workstation" in why


def test_nothing_within_budget_picks_the_smallest_loss_and_says_so():
    name, why = choose_default([row("int8", 0.90, 0.5), row("dynamic", 0.95, 0.1)], keras_acc=0.99, max_drop=0.01)
    assert name == "dynamic" and "no variant fits" in why


def test_raw_outputs_are_judged_by_their_relative_error_not_waved_through():
    """A regression model has no accuracy or agreement: int8's outputs 3% off (SNR 30 dB) miss a 1% budget."""
    def raw(name, snr, ms):
        return Variant(name, name, VariantStatus.OK, file=f"{name}.tflite", bytes=1000,
                       metrics={"accuracy": None, "agreement": None, "snr_db": snr, "latency_ms": ms})

    rows = [raw("fp32", None, 1.0), raw("fp16", 62.0, 0.9), raw("int8", 30.0, 0.4)]
    name, why = choose_default(rows, keras_acc=None, max_drop=0.01)
    assert name == "fp16" and "relative output error" in why and "budget of 1.00%" in why   # a ratio, not points
    name, _ = choose_default(rows, keras_acc=None, max_drop=0.05)
    assert name == "int8"
