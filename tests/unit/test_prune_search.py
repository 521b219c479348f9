"""The pruning search's arithmetic: intervals, per-layer allocation from sensitivities, config checks."""

from __future__ import annotations

import pytest

from keras_edge.device.contract.errors import ConfigError
from keras_edge.host.prune.search import SearchConfig, Sensitivity, _sparsity_for, allocate, wilson_half_width


def test_wilson_half_width_matches_the_textbook_values():
    assert wilson_half_width(0.5, 100) == pytest.approx(0.0962, abs=5e-4)
    assert wilson_half_width(0.95, 54) == pytest.approx(0.064, abs=2e-3)
    assert wilson_half_width(0.99, 360) < wilson_half_width(0.99, 54)


SENS = (Sensitivity("early", 32, {0.25: 0.05, 0.5: 0.30, 0.75: 0.60}),    # sensitive
        Sensitivity("middle", 64, {0.25: 0.0, 0.5: 0.02, 0.75: 0.10}),
        Sensitivity("late", 128, {0.25: 0.0, 0.5: 0.0, 0.75: 0.01}))      # robust


def test_a_group_gets_the_most_sparsity_its_solo_cost_allows():
    assert _sparsity_for(SENS[2], 0.0) == pytest.approx(0.5)
    assert _sparsity_for(SENS[0], 0.0) == 0.0
    assert _sparsity_for(SENS[1], 0.02) == pytest.approx(0.5)
    # never more than 0.9, and a cost that never rises still stops there
    assert _sparsity_for(Sensitivity("flat", 8, {0.25: 0, 0.5: 0, 0.75: 0}), 1.0) == pytest.approx(0.9)


@pytest.mark.parametrize("level", [0.2, 0.4, 0.6])
def test_allocation_meets_the_level_and_spares_sensitive_layers(level):
    per = allocate(level, SENS)
    mean = sum(s.channels * per[s.layer] for s in SENS) / sum(s.channels for s in SENS)
    assert mean == pytest.approx(level, abs=0.03)
    assert per["early"] <= per["middle"] <= per["late"]


def test_cost_curves_are_made_monotone():
    bumpy = Sensitivity("bumpy", 16, {0.25: 0.2, 0.5: 0.05, 0.75: 0.3})   # a lucky dip is not a free lunch
    assert _sparsity_for(bumpy, 0.1) < 0.25


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"max_accuracy_drop": 1.5}, "max_accuracy_drop"), ({"target_speedup": 0.9}, "target_speedup"),
    ({"levels": ()}, "levels"), ({"levels": (0.5, 1.0)}, "levels"), ({"epochs": 0}, "epochs"),
])
def test_bad_search_settings_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        SearchConfig(**kwargs)
    assert e.value.field == field and e.value.fix
