"""The manifest's fields for several inputs and outputs (issue 13, model kinds): per-input preprocessing,
the variant's input/output order, per-output tolerances; round trips, and old manifests still load."""

from __future__ import annotations

import json

import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract.errors import BundleError
from keras_edge.device.inputs.preprocess import PreprocessSpec


def _two_by_two(**variant) -> B.Manifest:
    image = PreprocessSpec.from_preset("raw", 16, 16, 1, reason="read from the SavedModel graph: x*0.00392+0")
    fields = dict(name="kinds", mode="fp32", status="ok", file="fp32.tflite", sha256="00" * 32, bytes=10,
                  inputs=(B.TensorSpec("serving_default_extra:0", (1, 4), "float32"),
                          B.TensorSpec("serving_default_image:0", (1, 16, 16, 1), "float32")),
                  outputs=(B.TensorSpec("StatefulPartitionedCall:1", (1, 1), "float32"),
                           B.TensorSpec("StatefulPartitionedCall:0", (1, 10), "float32")),
                  tolerance=B.Tolerance(max_abs=0.05, gpu_max_abs=0.11, output_max_abs=(0.05, 0.01)),
                  input_order=(1, 0), output_order=(1, 0))
    fields.update(variant)
    fields.pop("name")
    v = B.Variant(name="fp32", **fields)
    return B.Manifest(name="kinds", preprocess=image, inputs=(B.TensorSpec("image", (1, 16, 16, 1), "float32"),
                                                              B.TensorSpec("extra", (1, 4), "float32")),
                      outputs=(B.TensorSpec("scores", (1, 10), "float32"), B.TensorSpec("ink", (1, 1), "float32")),
                      variants=(v,), task=B.Task.OTHER, input_preprocess=(image, None))


def test_several_inputs_and_outputs_round_trip():
    m = _two_by_two()
    d = json.loads(json.dumps(m.to_dict()))
    back = B.Manifest.from_dict(d)
    assert back == m
    assert back.preprocess_for(0).reason.startswith("read from the SavedModel graph") and back.preprocess_for(1) is None
    v = back.variant("fp32")
    assert [back.inputs[v.manifest_input(i)].name for i in range(2)] == ["extra", "image"]
    assert [back.outputs[v.manifest_output(i)].name for i in range(2)] == ["ink", "scores"]
    assert back.input_index("extra") == 1 and back.input_index("input_0") == 0 and back.input_index("nope") is None


def test_per_output_bounds_and_their_gpu_slack():
    tol = _two_by_two().variant("fp32").tolerance
    assert tol.output_bound(1, gpu=False) == 0.01
    assert tol.output_bound(1, gpu=True) == pytest.approx(0.01 + 0.06)   # the variant's GPU margin
    assert tol.output_bound(5, gpu=False) == 0.05                       # unrecorded: the overall bound


def test_an_old_single_input_manifest_loads_and_writes_as_before():
    m = _two_by_two()
    d = json.loads(json.dumps(m.to_dict()))
    d.pop("input_preprocess")
    d["inputs"], d["outputs"] = d["inputs"][:1], d["outputs"][:1]
    for key in ("input_order", "output_order"):
        d["variants"][0].pop(key)
    d["variants"][0]["inputs"], d["variants"][0]["outputs"] = d["variants"][0]["inputs"][1:], d["variants"][0]["outputs"][1:]
    d["variants"][0]["tolerance"].pop("output_max_abs")
    old = B.Manifest.from_dict(d)
    assert old.input_preprocess == () and old.preprocess_for(0) == m.preprocess
    v = old.variant("fp32")
    assert v.input_order == () and v.manifest_input(0) == 0 and v.manifest_output(0) == 0
    assert v.tolerance.output_bound(0, gpu=False) == 0.05
    assert "input_preprocess" not in old.to_dict()   # a single-input manifest keeps its old shape


@pytest.mark.parametrize("bad", [dict(input_order=(0, 0)), dict(output_order=(2, 0)), dict(input_order=(0,))])
def test_an_invalid_order_is_a_broken_manifest(bad):
    with pytest.raises(BundleError, match="invalid (input|output)_order"):
        _two_by_two(**bad)


def test_input_preprocess_must_have_one_entry_per_input():
    d = _two_by_two().to_dict()
    d["input_preprocess"] = d["input_preprocess"][:1]
    with pytest.raises(BundleError, match="1 input preprocessing spec"):
        B.Manifest.from_dict(d)
