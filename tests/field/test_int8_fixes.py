"""``--qat`` fine-tunes in a fresh process: a native crash there (here a real SIGABRT, raised by a user module
when the fine-tuning child imports it) costs int8-qat, not the bundle. (LayerNormalization's integer-only int8,
the other fix the field suite asked for, is tested in tests/e2e/test_integer_route.py.)
"""

from __future__ import annotations

import json
import textwrap

import zoo
from keras_edge.cli import main


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
