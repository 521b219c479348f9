"""int8-ptq on a SavedModel: keras-edge's own wrapper of its serving signature is cloned, not refused."""

from __future__ import annotations

import pytest

from keras_edge.device.contract import bundle as B


def test_int8_ptq_on_a_savedmodel_says_why_its_steps_do_not_apply(digits_demo, tmp_path):
    import keras
    import numpy as np

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.tflite import ptq
    from keras_edge.host.model_io import load_model

    from test_selective_int8 import _wide_range_model

    wide = keras.models.load_model(_wide_range_model(digits_demo.model, tmp_path / "wide.keras"))
    wide.export(str(tmp_path / "exported"), verbose=False)
    loaded = load_model(tmp_path / "exported")
    x = np.random.default_rng(0).random((4, 32, 32, 1), np.float32) * 255
    copy = ptq.clone(loaded.model)   # was: Could not locate class '_Signature'
    np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(loaded.model(x)), atol=1e-6)
    res = convert(ConvertConfig(model=tmp_path / "exported", out=tmp_path / "b", calib=digits_demo.train,
                                eval=digits_demo.eval, variants=("fp32", "int8"), calib_samples=48, eval_samples=80,
                                max_accuracy_drop=0.02, selective=False, qat=False))
    m = B.read_manifest(res.bundle)
    assert m.source["kind"] == "savedmodel" and m.variant("int8").status is B.VariantStatus.OK
    steps = res.report.ptq["steps"]
    assert [s["step"] for s in steps] == ["int8", "equalization", "range setting", "bias correction"]
    assert all(not s["applied"] and "SavedModel" in s["why"] for s in steps[1:])
    assert "int8-ptq" not in [v.name for v in m.variants]


def test_a_signature_layer_config_from_elsewhere_still_meets_safe_mode(tmp_path):
    """Only directories this process wrapped reload without safe mode's refusal."""
    from keras_edge.host.model_io import signature_layer_class
    from keras_edge.host.tfenv import import_tf

    import_tf()
    with pytest.raises(ValueError, match="safe_mode"):
        signature_layer_class().from_config({"filepath": str(tmp_path / "elsewhere"), "call_endpoint": "serving_default",
                                             "name": "sig"})
