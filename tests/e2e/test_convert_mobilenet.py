"""keras.applications.MobileNetV2 (alpha 0.35, 96×96, weights=None) through every variant.

Random weights make accuracy meaningless, so this checks that every variant converts, runs in
LiteRT on real photos (scikit-image's samples), and agrees with the Keras model within its tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.host.convert import ConvertConfig, convert
from keras_edge.host.preprocessing import PreprocessOptions
from keras_edge.host.tflite.evaluate import load_tflite, predict
from keras_edge.host.tflite.variants import VARIANTS


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of real photos from scikit-image, with flips and crops for more samples."""
    import cv2
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "immunohistochemistry", "hubble_deep_field"):
        img = getattr(data, name)()
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
        h, w = bgr.shape[:2]
        for i, view in enumerate((bgr, bgr[:, ::-1], bgr[h // 4:, w // 4:], bgr[: h * 3 // 4, : w * 3 // 4])):
            cv2.imwrite(str(root / f"{name}_{i}.jpg"), np.ascontiguousarray(view))
    return root


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 3), weights=None, classes=10)
    path = tmp_path_factory.mktemp("mnv2") / "mobilenetv2_035_96.keras"
    model.save(path)
    return path


def test_mobilenetv2_converts_to_every_variant_and_runs(mobilenet, photos, tmp_path):
    res = convert(ConvertConfig(model=mobilenet, out=tmp_path / "mnv2", calib=photos, variants=tuple(VARIANTS),
                                preprocess=PreprocessOptions(preset="tf", resize="crop"), calib_samples=24, eval_samples=8))
    m = B.read_manifest(res.bundle)
    assert m.preprocess.preset == "tf" and m.preprocess.resize == "crop"
    ref = np.load(res.bundle / B.REFERENCE)
    assert -1.0 <= ref["input_0"].min() < 0 < ref["input_0"].max() <= 1.0
    for v in m.variants:
        if v.name == "int16x8" and v.status is B.VariantStatus.VALIDATION_FAILED:
            # experimental int16x8 kernels refuse some random-weight depthwise layers (integer overflow);
            # the converter must say which node failed and keep the other variants
            assert "failed to prepare" in v.reason and "DEPTHWISE_CONV_2D" in v.reason
            continue
        assert v.status is B.VariantStatus.OK, (v.name, v.reason)
        y = predict(load_tflite(B.check_variant(res.bundle, v)), [ref["input_0"]])[0]
        assert y.shape == ref["output_0"].shape
        assert np.abs(y - ref["output_0"]).max() <= v.tolerance.max_abs, v.name
    sizes = {v.name: v.bytes for v in m.variants}
    assert sizes["int8"] < 0.4 * sizes["fp32"] and sizes["fp16"] < 0.6 * sizes["fp32"]
