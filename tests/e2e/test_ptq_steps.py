"""Post-training steps on a small separable/MobileNetV2-style CNN trained here on scikit-learn's digits.

Each step must keep the float model's answers (verified in float), and equalization must undo a
per-channel range imbalance that breaks plain int8.
"""

from __future__ import annotations

import numpy as np
import pytest

SIZE = 24


@pytest.fixture(scope="module")
def trained():
    import keras
    from keras import layers
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import digits_images
    from keras_edge.host.tfenv import captured_output, import_tf

    import_tf()
    imgs, labels = digits_images(SIZE)
    x = imgs[..., None].astype(np.float32)
    tr, ev = train_test_split(np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=0)
    keras.utils.set_random_seed(0)
    bn = lambda: layers.BatchNormalization(momentum=0.9)  # noqa: E731 - moving statistics settle in a short run
    inp = keras.Input((SIZE, SIZE, 1))
    h = layers.Rescaling(1 / 255)(inp)
    h = layers.ReLU(6.0)(bn()(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(h)))
    h = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
    h = layers.ReLU(6.0)(bn()(h))
    h = bn()(layers.Conv2D(24, 1, use_bias=False)(h))
    h = layers.SeparableConv2D(32, 3, strides=2, padding="same", use_bias=False)(h)
    h = layers.ReLU()(bn()(h))
    out = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with captured_output():
        model.fit(x[tr], labels[tr], epochs=15, batch_size=32, verbose=0)
    acc = float(np.mean(model.predict(x[ev], verbose=0).argmax(1) == labels[ev]))
    assert acc > 0.9, acc   # it learned the digits
    return model, x[tr][:150], x[ev]


def _int8_agreement(model, cal, x, tmp_path) -> float:
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.variants import ConvertInputs, convert

    path = tmp_path / "m.tflite"
    path.write_bytes(convert(model, "int8", ConvertInputs([cal]))[0])
    y = E.predict(E.load_tflite(path), [x])[0]
    return float(np.mean(y.argmax(1) == model.predict(x, verbose=0).argmax(1)))


def test_pairs_go_through_bn_relu6_and_into_separable_convs(trained):
    from keras_edge.host.tflite import ptq

    model = trained[0]
    kinds = {(ptq._kind(p.producer), tuple(ptq._kind(c) for c in p.consumers), p.relu6) for p in ptq.pairs(model)}
    assert ("bn", ("depthwise",), True) in kinds     # conv → BN → ReLU6 → depthwise
    assert ("bn", ("conv",), True) in kinds          # depthwise → BN → ReLU6 → 1x1 project
    assert ("bn", ("separable",), False) in kinds    # project BN (linear) → separable conv


def test_equalization_keeps_float_answers_and_repairs_an_imbalanced_separable_conv(trained, tmp_path):
    from keras import layers

    from keras_edge.host.tflite import ptq

    model, cal, x = trained
    import keras

    skewed = keras.models.clone_model(model)
    skewed.set_weights(model.get_weights())
    sep = next(layer for layer in skewed.layers if isinstance(layer, layers.SeparableConv2D))
    dw, pw = sep.get_weights()
    s = np.geomspace(1 / 40, 40, dw.shape[2]).astype(np.float32)[np.random.default_rng(0).permutation(dw.shape[2])]
    sep.set_weights([dw * s.reshape(1, 1, -1, 1), pw / s.reshape(1, 1, -1, 1)])   # the float function is unchanged
    assert np.abs(skewed.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-4
    eq = ptq.equalize(skewed, cal)
    assert eq.applied and eq.detail["float_max_abs_change"] < 1e-3
    plain, fixed = _int8_agreement(skewed, cal, x, tmp_path), _int8_agreement(eq.model, cal, x, tmp_path)
    assert fixed > plain and fixed >= 0.97, (plain, fixed)


def test_bias_correction_and_range_setting_are_verified_in_float(trained):
    from keras_edge.host.tflite import ptq

    model, cal, x = trained
    bc = ptq.bias_correct(model, cal)
    if bc.applied:
        assert bc.detail["weight_quant_kl_after"] < bc.detail["weight_quant_kl_before"]
    else:
        assert "closer to float" in bc.detail["why"]
    clip = ptq.clip_ranges(model, cal)
    if clip.applied:
        assert clip.detail["float_agreement"] >= ptq.CLIP_MIN_AGREEMENT and clip.detail["float_kl"] <= ptq.CLIP_MAX_KL
        before = {layer.name: layer.max_value for layer in model.layers if type(layer).__name__ == "ReLU"}
        after = {layer.name: layer.max_value for layer in clip.model.layers if type(layer).__name__ == "ReLU"}
        capped = [n for n in before if after[n] != before[n]]
        assert len(capped) == clip.detail["capped"] and all(after[n] < (before[n] or np.inf) for n in capped)
    # the original model is never modified in place
    assert all(getattr(layer, "max_value", None) in (None, 6.0) for layer in model.layers if type(layer).__name__ == "ReLU")


def test_bias_correction_streams_its_statistics(trained, monkeypatch):
    """One layer-input batch at a time: the same correction with batches of one sample, and memory that
    does not grow with the number of calibration images."""
    import tracemalloc

    from keras_edge.host.tflite import ptq

    model, cal, _ = trained
    x = np.concatenate([cal] * 2)[:240]
    ref = ptq.bias_correct(model, x[:64])
    monkeypatch.setattr(ptq, "ACT_BUDGET", 1)            # every probe batch is a single sample
    one = ptq.bias_correct(model, x[:64])
    assert ptq._batch_for([model.layers[2].output]) == 1 and one.applied == ref.applied
    for a, b in zip(one.model.get_weights(), ref.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    monkeypatch.undo()
    peaks = []
    for n in (40, 240):
        tracemalloc.start()
        ptq.bias_correct(model, x[:n])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0], peaks   # six times the images, not six times the memory


@pytest.fixture(scope="module")
def residual():
    """A residual stream as in mini-Xception (fer's emotion CNN): two BN branches → Add (no ReLU) → MaxPool → conv."""
    import keras
    from keras import layers

    from keras_edge.demo import digits_images
    from keras_edge.host.tfenv import captured_output, import_tf

    import_tf()
    imgs, labels = digits_images(SIZE)
    x = imgs[..., None].astype(np.float32)
    keras.utils.set_random_seed(1)
    inp = keras.Input((SIZE, SIZE, 1))
    h = layers.Rescaling(1 / 255)(inp)
    h = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(h)))
    a = layers.BatchNormalization(momentum=0.9)(layers.Conv2D(16, 3, padding="same", use_bias=False)(h))
    b = layers.BatchNormalization(momentum=0.9)(layers.Conv2D(16, 1, use_bias=False)(h))
    m = layers.MaxPooling2D()(layers.Add()([a, b]))
    h = layers.Conv2D(32, 3, padding="same", activation="relu")(m)
    out = layers.Dense(10, activation="softmax")(layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    with captured_output():
        model.fit(x[:1200], labels[:1200], epochs=6, batch_size=32, verbose=0)
    assert float(np.mean(model.predict(x[1200:], verbose=0).argmax(1) == labels[1200:])) > 0.85
    return model, x[:150], x[1200:]


def test_residual_stream_is_one_group_and_equalization_repairs_it(residual, tmp_path):
    import keras
    from keras import layers

    from keras_edge.host.tflite import ptq

    model, cal, x = residual
    groups = ptq.stream_groups(model)
    assert len(groups) == 1
    g = groups[0]
    assert sorted(ptq._kind(p) for p in g.producers) == ["bn", "bn"] and [ptq._kind(c) for c in g.consumers] == ["conv"]
    assert len(g.tensors) == 4   # both branches, the sum, the pooled sum
    skewed = keras.models.clone_model(model)
    skewed.set_weights(model.get_weights())
    s = np.geomspace(1 / 30, 30, 16).astype(np.float32)[np.random.default_rng(0).permutation(16)]
    for p in ptq.stream_groups(skewed)[0].producers:   # one channel scale through the whole stream: exact in float
        ptq._scale_out(p, 1 / s)
    consumer = next(layer for layer in skewed.layers if isinstance(layer, layers.Conv2D) and layer.filters == 32)
    ptq._scale_in(consumer, 1 / s)
    assert np.abs(skewed.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-4
    assert ptq.equalize(skewed, cal, balance=True).detail["streams"] == 0   # the step as it was: pairs only
    eq = ptq.equalize(skewed, cal, balance=False)
    assert eq.applied and eq.detail["streams"] == 1 and eq.detail["float_max_abs_change"] < 1e-3
    assert any(n.startswith("stream ") for n in eq.detail["equalized"])
    plain, fixed = _int8_agreement(skewed, cal, x, tmp_path), _int8_agreement(eq.model, cal, x, tmp_path)
    assert fixed > plain and fixed >= 0.95, (plain, fixed)


def test_a_stream_that_reaches_the_output_or_a_concatenate_is_left_alone():
    import keras
    from keras import layers

    from keras_edge.host.tflite import ptq

    inp = keras.Input((8, 8, 3))
    a = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same")(inp))
    b = layers.BatchNormalization()(layers.Conv2D(4, 1)(inp))
    s = layers.Add()([a, b])
    assert ptq.stream_groups(keras.Model(inp, s)) == []                      # a model output: its scale is the user's
    c = layers.Concatenate()([s, a])
    assert ptq.stream_groups(keras.Model(inp, layers.Conv2D(2, 1)(c))) == []  # a Concatenate mixes channels' scales
    assert len(ptq.stream_groups(keras.Model(inp, layers.Conv2D(2, 1)(s)))) == 1
