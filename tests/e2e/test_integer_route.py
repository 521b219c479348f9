"""LayerNorm/attention models get an integer variant: small ViT- and ConvNeXt-like blocks trained here on
scikit-learn's digits, so agreement with Keras means something."""

from __future__ import annotations

import numpy as np
import pytest

from keras_edge.device.contract import bundle as B

SIZE = 32   # the digits demo's image folders


def _vit(keras, L):
    """Patch embedding, one pre-norm transformer block (LayerNorm, MultiHeadAttention, GELU MLP)."""
    inp = keras.Input((SIZE, SIZE, 1))
    x = L.Rescaling(1 / 255)(inp)
    x = L.Reshape((64, 32))(L.Conv2D(32, 4, strides=4)(x))
    h = L.LayerNormalization()(x)
    x = L.Add()([x, L.MultiHeadAttention(2, 16)(h, h)])
    h = L.LayerNormalization()(x)
    x = L.Add()([x, L.Dense(32)(L.Dense(64, activation="gelu")(h))])
    x = L.Flatten()(L.LayerNormalization()(x))   # keeps where each patch is (no position embedding here)
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="tiny_vit")


def _convnext(keras, L):
    """A ConvNeXt block: 7×7 depthwise conv, LayerNorm, inverted GELU MLP, residual."""
    inp = keras.Input((SIZE, SIZE, 1))
    x = L.Conv2D(32, 4, strides=4)(L.Rescaling(1 / 255)(inp))
    h = L.LayerNormalization(epsilon=1e-6)(L.DepthwiseConv2D(7, padding="same")(x))
    x = L.Add()([x, L.Dense(32)(L.Dense(96, activation="gelu")(h))])
    x = L.LayerNormalization(epsilon=1e-6)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="tiny_convnext")


@pytest.fixture(scope="module")
def digits():
    from keras_edge.demo import digits_images
    from keras_edge.host.tfenv import import_tf

    import_tf()
    imgs, labels = digits_images(SIZE)
    return imgs[..., None].astype(np.float32), labels


def _trained(build, digits, epochs: int = 6):
    import keras
    from keras import layers as L

    from keras_edge.host.tfenv import captured_output

    x, y = digits
    keras.utils.set_random_seed(0)
    model = build(keras, L)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with captured_output():
        model.fit(x[:1400], y[:1400], epochs=epochs, batch_size=32, verbose=0)
    acc = float(np.mean(model.predict(x[1400:], verbose=0).argmax(1) == y[1400:]))
    assert acc > 0.8, acc   # it learned the digits
    return model


@pytest.fixture(scope="module")
def vit_bundle(digits, digits_demo, tmp_path_factory):
    from keras_edge.host.convert import ConvertConfig, convert

    model = _trained(_vit, digits)
    out = tmp_path_factory.mktemp("vit") / "bundle"
    return model, convert(ConvertConfig(model=model, out=out, calib=digits_demo.train, eval=digits_demo.eval,
                                        variants=("fp32", "int8"), calib_samples=64, eval_samples=120, ptq=False,
                                        selective=False, qat=False, max_accuracy_drop=0.05))


def test_vit_block_converts_integer_only_through_the_layernorm_rewrite(vit_bundle, digits):
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.variants import float_ops

    model, res = vit_bundle
    m = B.read_manifest(res.bundle)
    int8 = m.variant("int8")
    assert int8.status is B.VariantStatus.OK, int8.reason
    path = B.check_variant(res.bundle, int8)
    assert float_ops(path.read_bytes()) == []              # integer-only: no NEG left in float
    assert int8.inputs[0].dtype == "uint8"
    assert int8.metrics["rewrites"] == {"LayerNormalization": 3}
    assert int8.metrics["agreement"] >= 0.9, int8.metrics
    assert res.report.integer["float_ops"] == ["NEG"] and res.report.integer["kept"] == "int8"
    assert "int8-mixed" not in [v.name for v in m.variants]
    # the bundle's int8 file, run here, answers like the Keras model
    x = digits[0][1500:1540]
    got = E.predict(E.load_tflite(path), [x])[0]
    assert np.mean(got.argmax(1) == model.predict(x, verbose=0).argmax(1)) >= 0.9
    md = (res.bundle / B.REPORT_MD).read_text()
    assert "## Integer route" in md and "LayerNormalization" in md and "Kept: `int8` (integer-only)" in md


def test_convnext_block_rewrite_is_float_exact_and_integer_only(digits, tmp_path):
    from keras_edge.host.tflite.rewrite import integer_friendly
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.variants import ConvertInputs, VariantFailed, convert, float_ops

    model = _trained(_convnext, digits, epochs=5)
    x, _ = digits
    cal = ConvertInputs([x[:48]])
    with pytest.raises(VariantFailed, match="NEG"):
        convert(model, "int8", cal)
    r = integer_friendly(model, x[:8])
    assert r.applied == {"LayerNormalization": 2} and r.float_change < 1e-4
    assert [type(layer).__name__ for layer in r.model.layers].count("IntegerLayerNormalization") == 2
    blob, warnings = convert(r.model, "int8", cal)
    assert not warnings and float_ops(blob) == []
    path = tmp_path / "convnext.tflite"
    path.write_bytes(blob)
    ev = x[1500:1580]
    got = E.predict(E.load_tflite(path), [ev])[0]
    assert np.mean(got.argmax(1) == model.predict(ev, verbose=0).argmax(1)) >= 0.9


def test_an_op_without_int8_kernel_or_rewrite_gives_int8_mixed_with_it_named(digits_demo, tmp_path):
    """A custom layer computing −x before a conv with negated kernels (the same function): NEG has no int8
    kernel and no rewrite."""
    import keras
    from keras import ops

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.variants import float_ops

    class Negate(keras.layers.Layer):
        def call(self, x):
            return ops.negative(x)

    src = keras.models.load_model(digits_demo.model)
    conv = src.layers[2]
    flipped = keras.layers.Conv2D.from_config({**conv.get_config(), "name": "flipped"})
    h = flipped(Negate()(src.layers[1](src.input)))
    w, b = conv.get_weights()
    flipped.set_weights([-w, b])
    for layer in src.layers[3:]:
        h = layer(h)
    model = keras.Model(src.input, h)
    res = convert(ConvertConfig(model=model, out=tmp_path / "b", calib=digits_demo.train, eval=digits_demo.eval,
                                variants=("fp32", "int8"), calib_samples=48, eval_samples=80))
    m = B.read_manifest(res.bundle)
    int8, mixed = m.variant("int8"), m.variant("int8-mixed")
    assert int8.status is B.VariantStatus.CONVERSION_FAILED and "NEG" in int8.reason
    assert mixed.status is B.VariantStatus.OK and mixed.metrics["float_ops"] == ["NEG"]
    assert float_ops(B.check_variant(res.bundle, mixed).read_bytes()) == ["NEG"]
    assert mixed.metrics["latency_ms"] > 0 and mixed.metrics["agreement"] >= 0.95
    assert res.report.integer["kept"] == "int8-mixed"
    assert any(t["route"] == "rewrite" and t["status"] == "not applied" for t in res.report.integer["tried"])
    x = np.stack([np.asarray(keras.utils.load_img(p, color_mode="grayscale"), np.float32)[..., None]
                  for p in sorted(digits_demo.eval.rglob("*.png"))[:20]])
    got = E.predict(E.load_tflite(B.check_variant(res.bundle, mixed)), [x])[0]
    assert np.mean(got.argmax(1) == model.predict(x, verbose=0).argmax(1)) >= 0.9
    assert "in float: `NEG`" in (res.bundle / B.REPORT_MD).read_text()
