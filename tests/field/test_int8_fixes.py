"""Two failures the field suite and the coverage matrix found, fixed:

- LayerNormalization (ConvNeXt blocks, attention blocks) had no full-integer int8: Keras computes it with a NEG
  that TFLite's int8 quantizer leaves in float, so convert refused int8. The calibrated recipes now see it as
  ``(x - mean) * inv + beta`` (host/tflite/rewrite.py): the same function, every op quantized.
- ``--qat`` fine-tunes in a fresh process: a native crash there (here a real SIGABRT, raised by a user module
  when the fine-tuning child imports it) costs int8-qat, not the bundle.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np

import zoo
from keras_edge.cli import main
from keras_edge.device.contract import bundle as B


def _convnext_block(size: int = 32):
    import keras
    from keras import layers as L

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    x = L.Conv2D(16, 4, strides=4)(inp)
    h = L.LayerNormalization(epsilon=1e-6)(L.DepthwiseConv2D(7, padding="same")(x))
    x = x + L.Dense(16)(L.Dense(64, activation="gelu")(h))
    out = L.Dense(6, activation="softmax")(L.LayerNormalization()(L.GlobalAveragePooling2D()(x)))
    return keras.Model(inp, out)


def test_layer_normalization_converts_to_full_integer_int8(tmp_path, capsys):
    from keras_edge.host.tflite.rewrite import int8_friendly
    from keras_edge.host.tflite.variants import float_ops

    model = _convnext_block()
    x = np.random.default_rng(0).uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    same = int8_friendly(model)
    assert same is not model
    np.testing.assert_allclose(same.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    model.save(tmp_path / "ln.keras")
    calib, evald = (zoo.scene_crops(tmp_path / d, n, 32, seed=s) for d, n, s in (("c", 48, 0), ("e", 24, 1)))
    rc = main(["convert", str(tmp_path / "ln.keras"), "-o", str(tmp_path / "b"), "--calib", str(calib), "--eval",
               str(evald), "--preprocess", "tf", "--variants", "fp32,int8", "--max-accuracy-drop", "0.5"])
    assert rc == 0, capsys.readouterr().err
    v = B.read_manifest(tmp_path / "b").variant("int8")
    assert v.status is B.VariantStatus.OK, v.reason
    assert float_ops((tmp_path / "b" / v.file).read_bytes()) == []
    assert v.metrics["agreement"] > 0.7


ABORT_IN_CHILD = textwrap.dedent("""
    import os
    import sys

    # a native crash in the fine-tuning process, and only there
    if sys.argv and sys.argv[0].endswith("qat_child.py"):
        os.abort()
""")


def test_a_crash_while_fine_tuning_costs_int8_qat_not_the_bundle(tmp_path, capsys):
    (tmp_path / "crashy.py").write_text(ABORT_IN_CHILD)
    model = _convnext_block()
    model.save(tmp_path / "m.keras")
    calib, evald = (zoo.scene_crops(tmp_path / d, n, 32, seed=s) for d, n, s in (("c", 32, 0), ("e", 16, 1)))
    rc = main(["convert", str(tmp_path / "m.keras"), "-o", str(tmp_path / "b"), "--calib", str(calib), "--eval",
               str(evald), "--preprocess", "tf", "--variants", "fp32,int8", "--qat", "--qat-epochs", "1",
               "--no-ptq", "--search-time", "1", "--import", str(tmp_path / "crashy.py")])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "int8-qat: not made: the fine-tuning process died of signal 6 (SIGABRT)" in err, err
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    qat = next(s for s in report["ptq"]["steps"] if s["step"] == "QAT")
    assert qat["applied"] is False and "SIGABRT" in qat["why"]
    assert {v["name"] for v in report["variants"]} >= {"fp32", "int8"}
