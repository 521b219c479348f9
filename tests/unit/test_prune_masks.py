"""Magnitude masks, sparsity schedules, configuration checks and the distillation loss."""

from __future__ import annotations

import math

import numpy as np
import pytest

from keras_edge.device.contract.errors import EdgeError
from keras_edge.host.prune import PRUNE_METHODS, PruneConfig, PruneSpec, Schedule
from keras_edge.host.prune.base import gzip_size
from keras_edge.host.prune.magnitude import magnitude_mask, sparsity_at


def test_mask_zeroes_exactly_the_smallest_weights():
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)
    for s in (0.1, 0.5, 0.8, 0.97):
        m = magnitude_mask(w, s)
        assert m.shape == w.shape and set(np.unique(m)) <= {0.0, 1.0}
        assert int((m == 0).sum()) == round(s * w.size)
        assert np.abs(w[m == 0]).max() <= np.abs(w[m == 1]).min()


def test_mask_is_exact_even_with_tied_magnitudes():
    w = np.array([1.0, -1.0, 1.0, 1.0, 2.0, -2.0], np.float32)
    m = magnitude_mask(w, 0.5)
    assert (m == 0).sum() == 3 and m[4] == 1 and m[5] == 1


def test_polynomial_schedule_rises_from_zero_to_the_target_and_stays():
    values = [sparsity_at(Schedule.POLYNOMIAL, s, 70, 0.8) for s in range(0, 100)]
    assert values[0] == 0.0
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert values[70] == values[99] == 0.8
    assert values[35] == pytest.approx(0.8 * (1 - 0.5 ** 3))


def test_constant_schedule_is_the_target_from_the_first_step():
    assert sparsity_at(Schedule.CONSTANT, 0, 70, 0.6) == 0.6


@pytest.mark.parametrize("sparsity", [0.0, 1.0, 1.5, -0.2, math.nan])
def test_sparsity_outside_the_open_unit_interval_is_refused(sparsity):
    with pytest.raises(EdgeError, match=r"outside \(0, 1\)"):
        PruneConfig(method="magnitude", sparsity=sparsity)


@pytest.mark.parametrize(("field", "value", "text"), [
    ("method", "random", "method 'random' is not a known method; use one of: magnitude, channels"),
    ("schedule", "cosine", "schedule 'cosine' is not a known schedule"),
    ("criterion", "taylor", "criterion 'taylor' is not a known criterion"),
    ("alpha", 1.5, "alpha 1.5 is outside [0, 1]"),
    ("temperature", 0.0, "temperature 0.0 is not positive"),
    ("epochs", -1, "epochs is -1, negative"),
    ("batch_size", 0, "batch_size is 0, below 1"),
])
def test_bad_options_say_what_and_how_to_fix(field, value, text):
    kwargs = {"method": "channels", "sparsity": 0.5, field: value}
    with pytest.raises(EdgeError) as e:
        PruneConfig(**kwargs)
    assert text in str(e.value) and e.value.fix


def test_registry_keys_are_the_cli_choices():
    from keras_edge.commands.prune import prune

    method = next(p for p in prune.params if p.name == "method")
    assert list(method.type.choices) == list(PRUNE_METHODS) == ["magnitude", "channels"]


def test_config_takes_enum_values_from_strings():
    cfg = PruneConfig(method="magnitude", sparsity="0.25", schedule="constant")  # type: ignore[arg-type]
    assert cfg.sparsity == 0.25 and cfg.schedule is Schedule.CONSTANT


def test_prune_spec_for_convert():
    assert PruneSpec("channels", 0.5) == PruneSpec("channels", 0.5)
    assert PruneSpec("magnitude", "0.8").sparsity == 0.8
    with pytest.raises(EdgeError, match=r"^prune.method 'chanels' is not a known method; use one of: magnitude, channels"):
        PruneSpec("chanels", 0.5)
    with pytest.raises(EdgeError, match=r"^prune.sparsity 1.5 is outside \(0, 1\)"):
        PruneSpec("channels", 1.5)


def test_zeros_compress():
    rng = np.random.default_rng(0)
    dense = rng.integers(-127, 127, 10000, dtype=np.int8)
    sparse = dense * (rng.random(10000) > 0.8)
    assert gzip_size(sparse.tobytes()) < 0.5 * gzip_size(dense.tobytes())


def _np_loss(labels, t, s, temp, alpha):
    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    pt = np.exp(log_softmax(t / temp))
    kl = (pt * (log_softmax(t / temp) - log_softmax(s / temp))).sum(-1)
    ce = -log_softmax(s)[np.arange(len(labels)), labels]
    return alpha * temp ** 2 * kl + (1 - alpha) * ce


@pytest.mark.parametrize(("temp", "alpha"), [(1.0, 0.0), (4.0, 0.5), (2.0, 1.0)])
def test_distillation_loss_is_weighted_kl_plus_cross_entropy(temp, alpha):
    from keras_edge.host.prune.distill import distillation_loss

    rng = np.random.default_rng(1)
    t, s = rng.normal(size=(6, 5)).astype(np.float32) * 3, rng.normal(size=(6, 5)).astype(np.float32) * 3
    labels = rng.integers(0, 5, 6)
    got = np.asarray(distillation_loss(labels, t, s, temp, alpha))
    np.testing.assert_allclose(got, _np_loss(labels, t, s, temp, alpha), rtol=1e-4, atol=1e-5)


def test_distillation_loss_of_a_perfect_copy_has_no_soft_term():
    from keras_edge.host.prune.distill import distillation_loss

    t = np.random.default_rng(2).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(distillation_loss(np.zeros(4, int), t, t, 3.0, 1.0)), 0.0, atol=1e-6)
