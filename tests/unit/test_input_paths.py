"""Issue 24: fidelity that survives the input path, and a pruning budget that means pruning (pure logic, no TF)."""

from __future__ import annotations

import numpy as np
import pytest

from keras_edge.device.contract.bundle import Variant, VariantStatus
from keras_edge.device.inputs import quantize
from keras_edge.host.convert.choose import choose_default, loss_interval, loss_of
from keras_edge.host.tflite.evaluate import quantize_bare
from keras_edge.host.tflite.fidelity import fidelity_loss


def test_the_two_rounding_orders_differ_by_one_step_on_half_integer_inputs():
    # --preprocess tf: x = p/127.5 − 1, a uint8 input with scale 2/255 and zero-point 127 (what the TF converter writes)
    p = np.arange(256, dtype=np.float32)
    x = (p / 127.5 - 1.0)[None, :, None, None]
    scale, zp = 2 / 255, 127
    runner, bare = quantize(x, np.uint8, scale, zp), quantize_bare(x, np.uint8, scale, zp)
    diff = runner.astype(int) - bare.astype(int)
    assert set(np.unique(diff)) <= {-1, 0, 1} and np.count_nonzero(diff) >= 100   # about every other pixel value
    assert runner.dtype == bare.dtype == np.uint8
    # on-grid inputs (scale 1, zero-point 0: raw pixels) and float inputs give both orders the same values
    np.testing.assert_array_equal(quantize(p, np.uint8, 1.0, 0), quantize_bare(p, np.uint8, 1.0, 0))
    np.testing.assert_array_equal(quantize_bare(x, np.float32, 0.0, 0), x)


def test_decisions_take_the_worse_input_path():
    steady = {"agreement": 0.94, "agreement_ci": [0.90, 0.96], "kl": 0.0090, "agreement_bare": 0.94, "kl_bare": 0.0091}
    fragile = {"agreement": 0.96, "agreement_ci": [0.93, 0.98], "kl": 0.0080,        # a gain through the runner …
               "agreement_bare": 0.92, "agreement_ci_bare": [0.88, 0.95], "kl_bare": 0.0120}   # … that one step erases
    assert loss_of(fragile, None) == pytest.approx(0.08) and loss_of(steady, None) == pytest.approx(0.06)
    assert fidelity_loss(fragile) == pytest.approx(0.012) and fidelity_loss(fragile) > fidelity_loss(steady)
    assert loss_interval(fragile, None) == pytest.approx((0.05, 0.12))   # the bare path's interval, the worse one
    assert loss_of({"agreement": 0.9}, None) == pytest.approx(0.1)       # float inputs: one path
    with_labels = {"accuracy": 0.95, "accuracy_bare": 0.93, "agreement": 0.97}
    assert loss_of(with_labels, 0.96) == pytest.approx(0.03)


def _v(name, agreement, ms=1.0):
    return Variant(name, name, VariantStatus.OK, file=f"{name}.tflite", bytes=1000,
                   metrics={"agreement": agreement, "latency_ms": ms})


def test_a_pruned_variant_is_judged_against_the_best_unpruned_one_in_its_precision():
    from keras_edge.host.convert.core import _budget_marks

    rows = [_v("fp32", 1.0), _v("int8", 0.92), _v("int8-ptq", 0.94), _v("fp32-pruned-channels", 0.995),
            _v("int8-pruned-channels", 0.935, 0.5), _v("int8-pruned-magnitude", 0.90)]
    marked, notes = _budget_marks(rows, lambda v: loss_of(v.metrics, None), 0.01)
    m = {v.name: v.metrics for v in marked}
    # int8's own 8 pp loss is quantization's, not pruning's: the pruned int8 costs 0.5 pp against int8-ptq
    assert m["int8-pruned-channels"]["pruning_reference"] == "int8-ptq"
    assert m["int8-pruned-channels"]["pruning_cost"] == pytest.approx(0.005)
    assert m["int8-pruned-channels"]["within_budget"] is True
    assert m["int8-pruned-magnitude"]["within_budget"] is False and m["int8-pruned-magnitude"]["pruning_cost"] == pytest.approx(0.04)
    assert m["fp32-pruned-channels"]["pruning_reference"] == "fp32" and m["fp32-pruned-channels"]["within_budget"]
    assert m["int8"]["within_budget"] is False and "pruning_cost" not in m["int8"]
    assert any("int8-pruned-magnitude: pruning costs 4.00 pp against int8-ptq" in n for n in notes)
    # the default is still chosen on the loss against Keras: a pruned int8 6.5 pp off Keras is not the default
    assert choose_default(marked, None, 0.01)[0] in ("fp32", "fp32-pruned-channels")
