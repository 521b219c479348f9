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
