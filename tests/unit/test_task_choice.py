"""Detection/segmentation: the task metric's drop is the loss the budget, the default and the int8 search use."""

from __future__ import annotations

import pytest

from keras_edge.device.contract.bundle import TensorSpec, Variant, VariantStatus
from keras_edge.device.contract.errors import ConfigError, ModelError
from keras_edge.device.inputs.preprocess import PreprocessSpec
from keras_edge.host.convert import choose_default
from keras_edge.host.convert.choose import loss_of
from keras_edge.host.tflite.fidelity import fidelity_loss


def det(name, map5095, fidelity, ms, size=1000, keras=0.50):
    return Variant(name, name, VariantStatus.OK, file=f"{name}.tflite", bytes=size,
                   metrics={"task_metric": "map50_95", "map50": map5095 + 0.2, "map50_95": map5095,
                            "task_fidelity": fidelity, "metric_drop": round(keras - map5095, 6), "agreement": None,
                            "snr_db": 30.0, "latency_ms": ms})


def test_the_map_drop_decides_the_default_not_agreement():
    rows = [det("fp32", 0.50, 1.0, 1.0, 4000), det("int8", 0.20, 0.3, 0.3), det("int8-selective", 0.495, 0.95, 0.5)]
    assert loss_of(rows[1].metrics, None) == pytest.approx(0.30)
    name, why = choose_default(rows, keras_acc=None, max_drop=0.01)
    assert name == "int8-selective" and "mAP@0.5:0.95" in why
    name, _ = choose_default(rows, keras_acc=None, max_drop=0.5)
    assert name == "int8"


def test_the_search_minimises_loss_of_task_fidelity_with_noise_as_tie_break():
    a, b, c = (det("a", 0.4, 0.90, 1).metrics, det("b", 0.4, 0.95, 1).metrics,
               {**det("c", 0.4, 0.95, 1).metrics, "snr_db": 10.0})
    assert fidelity_loss(b) < fidelity_loss(a)
    assert fidelity_loss(b) < fidelity_loss(c) < fidelity_loss(a)


def test_classification_losses_are_unchanged():
    m = {"accuracy": 0.9, "agreement": 0.95, "kl": 0.01}
    assert loss_of(m, 0.92) == pytest.approx(0.02) and fidelity_loss(m) == 0.01


def _cfg(annotations=None, **kw):
    from keras_edge.device.outputs.task_options import TaskOptions
    from keras_edge.host.convert import ConvertConfig

    return ConvertConfig(model="m.keras", out="/tmp/x", calib="/tmp/c", annotations=annotations,
                         task_options=TaskOptions(**kw))


@pytest.mark.parametrize("kw, field", [({"task": "tracking"}, "task"), ({"head": "yolo", "task": "segmentation"}, "head"),
                                       ({"box_units": "inches"}, "box_units"), ({"iou_threshold": 0.0}, "iou_threshold"),
                                       ({"head": "ssd"}, "anchors"), ({"annotations": "/nonexistent/labels"}, "annotations")])
def test_task_fields_are_checked_on_construction(kw, field):
    with pytest.raises(ConfigError) as e:
        _cfg(**kw)
    assert e.value.field == field


def test_outputs_that_do_not_fit_the_task_are_one_model_error():
    from keras_edge.host.convert.tasks import resolve

    pre = PreprocessSpec(64, 64, 3, resize="letterbox")
    clf = [TensorSpec("probs", (-1, 3), "float32")]
    with pytest.raises(ModelError, match="do not fit task detection"):
        resolve(_cfg(task="detection", head="yolo"), clf, pre)
    yolo = [TensorSpec("pred", (-1, 64, 8), "float32")]
    spec = resolve(_cfg(task="detection", head="yolo", objectness=True), yolo, pre)
    assert spec.num_classes == 3 and spec.outputs == {"predictions": 0}
    with pytest.raises(ModelError, match="do not fit task segmentation"):
        resolve(_cfg(task="segmentation"), yolo, pre)
    seg = resolve(_cfg(task="segmentation"), [TensorSpec("mask", (-1, 64, 64, 4), "float32")], pre)
    assert seg.num_classes == 4
    notes = []
    assert resolve(_cfg(), yolo, pre, notes.append) is None and "--task" in notes[0]


def test_an_ssd_head_takes_its_anchors_and_a_background_column(tmp_path):
    import numpy as np

    from keras_edge.host.convert.tasks import ANCHORS_FILE, resolve

    anchors = tmp_path / "my_anchors.npy"
    np.save(anchors, np.tile(np.array([[0.5, 0.5, 0.2, 0.2]], np.float32), (96, 1)))
    pre = PreprocessSpec(64, 64, 3)
    outs = [TensorSpec("deltas", (-1, 96, 4), "float32"), TensorSpec("scores", (-1, 96, 4), "float32")]
    spec = resolve(_cfg(task="detection", head="ssd", anchors=anchors), outs, pre)
    assert spec.anchors == ANCHORS_FILE and spec.background == 0 and spec.num_classes == 3
    with pytest.raises(ModelError, match="the ssd head wants"):
        resolve(_cfg(task="detection", head="ssd", anchors=anchors), [outs[0], TensorSpec("s", (-1, 95, 4), "float32")], pre)
