"""Fidelity statistics: Wilson and paired intervals, KL/cosine/SNR, and the budget verdict."""

from __future__ import annotations

import numpy as np
import pytest

from keras_edge.host.convert.choose import loss_interval, verdict_of
from keras_edge.host.tflite.fidelity import (Decision, cosine_snr, kl_per_sample, n_needed, output_fidelity,
                                              paired_drop_interval, verdict, wilson)
from keras_edge.host.report.contract import Report


def test_wilson_matches_the_textbook_values():
    lo, hi = wilson(51, 54)   # 94.4% on 54 images, as in the issue
    assert lo == pytest.approx(0.8486, abs=1e-3) and hi == pytest.approx(0.9809, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    lo, hi = wilson(360, 360)
    assert hi == pytest.approx(1.0) and 0.98 < lo < 1.0


def test_paired_drop_interval_only_counts_discordant_images():
    k = np.array([True] * 100)
    assert paired_drop_interval(k, k.copy()) == pytest.approx((-0.005, 0.005))
    v = k.copy()
    v[:5] = False
    lo, hi = paired_drop_interval(k, v)
    assert lo < 0.05 < hi and lo > 0


def test_kl_is_zero_for_identical_outputs_and_applies_softmax_to_logits():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    assert kl_per_sample(p, p) == pytest.approx([0, 0], abs=1e-6)
    q = np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    kl = kl_per_sample(p, q)
    assert kl[0] > 0 and kl[1] == pytest.approx(0, abs=1e-6)
    logits = np.log(p)
    assert kl_per_sample(logits, np.log(q)) == pytest.approx(kl, rel=1e-4)


def test_cosine_and_snr_of_non_probability_outputs():
    rng = np.random.default_rng(0)
    k = rng.normal(size=(10, 20))
    cos, snr = cosine_snr(k, k + 0.01 * rng.normal(size=k.shape))
    assert cos > 0.999 and 35 < snr < 45
    fid = output_fidelity([k], [k], classification=False)
    assert "kl" not in fid and fid["cosine"] == pytest.approx(1.0) and fid["snr_db"] is None


def test_verdict_fits_misses_or_cannot_resolve_with_the_images_needed():
    budget = 0.01
    v = verdict(3 / 54, (1 - wilson(51, 54)[1], 1 - wilson(51, 54)[0]), 54, budget)
    assert v.decision is Decision.MISSES   # 3 of 54 is clearly over 1%
    v = verdict(1 / 54, (1 - wilson(53, 54)[1], 1 - wilson(53, 54)[0]), 54, budget)
    assert v.decision is Decision.UNRESOLVED and v.n_needed > 54
    assert "54 images cannot resolve the budget" in v.text and f"at least {v.n_needed} images" in v.text
    assert "one image = 1.85 pp" in v.text
    assert verdict(0.0, (0.0, 0.004), 1000, budget).decision is Decision.FITS
    assert n_needed(0.02, 0.01) == pytest.approx(753, rel=0.01)


def test_loss_interval_uses_the_paired_drop_with_labels_else_agreement():
    m = {"accuracy": 0.9, "accuracy_drop_ci": [0.01, 0.05], "agreement": 0.95, "agreement_ci": [0.9, 0.98], "n": 100}
    assert loss_interval(m, 0.93) == (0.01, 0.05)
    assert loss_interval(m, None) == pytest.approx((0.02, 0.10))
    assert verdict_of(m, None, 0.01).decision is Decision.MISSES


def test_reports_without_a_ptq_section_still_read():
    old = {"name": "b", "variants": [], "selective": None}
    assert Report.from_dict(old).ptq is None
    r = Report(name="b", ptq={"steps": [{"step": "int8"}], "kept": None})
    assert Report.from_dict(r.to_dict()).ptq == r.ptq


def test_map_fidelity_thresholds_probabilities_at_half_and_other_maps_at_keras_mean():
    from keras_edge.host.tflite.fidelity import map_fidelity

    k = np.zeros((2, 8, 8, 1))
    k[:, 2:6, 2:6] = 0.9                      # 32 pixels on
    v = k.copy()
    v[0, 2, 2:6] = 0.1                        # 4 lost
    v[1, 0, 0] = 0.8                          # 1 extra
    m = map_fidelity(k, v)
    assert m["map_threshold"] == 0.5 and m["map_threshold_kind"] == "0.5 (probabilities)"
    assert m["map_f1"] == pytest.approx(2 * 28 / (2 * 28 + 1 + 4)) and m["map_iou"] == pytest.approx(28 / 33)
    depth = k * 10 + 3                          # not probabilities: Keras's mean is the threshold
    m = map_fidelity(depth, depth)
    assert m["map_threshold_kind"] == "Keras's mean" and m["map_f1"] == m["map_iou"] == 1.0
    out = output_fidelity([v], [k], classification=False)
    assert out["map_f1"] == pytest.approx(0.918033, abs=1e-6) and out["rel_err"] == pytest.approx(10 ** (-out["snr_db"] / 20),
                                                                                             rel=1e-4)
    assert "map_f1" not in output_fidelity([np.ones((3, 10))], [np.ones((3, 10))], classification=False)


def test_constant_outputs_are_told_apart_from_varying_ones():
    from keras_edge.host.tflite.fidelity import constant_outputs

    rng = np.random.default_rng(0)
    flat = np.tile(np.array([[5.0, 0.013]]), (20, 1)) + rng.normal(0, 1e-6, (20, 2))
    note = constant_outputs([flat])
    assert note and note.startswith("the Keras model's outputs hardly vary across the 20 evaluation inputs")
    assert constant_outputs([flat, rng.random((20, 3))]) is None      # one varying output is enough
    assert constant_outputs([rng.random((20, 10))]) is None
    assert constant_outputs([flat[:1]]) is None                        # one input says nothing


def test_a_raw_verdict_speaks_of_relative_error_not_images():
    m = {"snr_db": 30.0, "n": 50, "agreement": None}
    v = verdict_of(m, None, 0.01)
    assert v.decision is Decision.MISSES and v.measure
    assert v.text == ("misses: relative RMS error of the outputs against Keras's (the worst output) 3.16% on 50 inputs "
                      "against a budget of 1.00%")
    assert "one image" in verdict_of({"agreement": 0.9, "agreement_ci": [0.8, 0.95], "n": 50}, None, 0.01).text


def test_a_task_verdict_speaks_of_its_metric():
    v = verdict_of({"task_metric": "miou", "miou": None, "task_fidelity": 0.1, "metric_drop": 0.9, "n": 40}, None, 0.01)
    assert v.text == "misses: mean IoU lost against Keras's own results 90.00% on 40 inputs against a budget of 1.00%"
    v = verdict_of({"task_metric": "map50_95", "map50_95": 0.5, "metric_drop": 0.002, "n": 40}, None, 0.01)
    assert v.text.startswith("fits: mAP@0.5:0.95 drop against Keras's 0.20% on 40 inputs")
