"""int8 that does not depend on how the input is rounded, and probabilities that are not cut to 1/256 steps.

A digits CNN trained here on TensorFlow's 'tf' normalisation (x = p/127.5 − 1) puts every pixel half a step
between two int8 input grid points; convert moves that half step into the first layer (host/convert/pixelgrid.py)
so both rounding orders give the same file inputs, and ends int8 classifiers in a float softmax over int8
logits (host/tflite/softmax_head.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.host.convert import ConvertConfig, convert
from keras_edge.host.preprocessing import PreprocessOptions

SIZE = 16


def _tf_cnn(keras, first_padding: str = "valid", bias: bool = False):
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Conv2D(8, 3, padding=first_padding, use_bias=bias)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(x)) if not bias else layers.ReLU()(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x))


@pytest.fixture(scope="module")
def tf_digits(tmp_path_factory):
    """(model path, calib folder, eval folder, trained model): digits at 16×16 gray, inputs p/127.5 − 1."""
    import keras
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import digits_images, write_image_folder

    tmp = tmp_path_factory.mktemp("pixel-grid")
    imgs, labels = digits_images(SIZE)
    tr, ev = train_test_split(np.arange(len(labels)), test_size=0.25, stratify=labels, random_state=0)
    names = [str(i) for i in range(10)]
    write_image_folder(tmp / "calib", imgs[tr], labels[tr], names)
    write_image_folder(tmp / "eval", imgs[ev][:240], labels[ev][:240], names)
    keras.utils.set_random_seed(0)
    model = _tf_cnn(keras)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    x = imgs[..., None].astype(np.float32) / 127.5 - 1.0
    model.fit(x[tr], labels[tr], epochs=4, batch_size=32, verbose=0)
    path = tmp / "tf_digits.keras"
    model.save(path)
    return path, tmp / "calib", tmp / "eval", model


def _convert(tf_digits, out, **kw):
    path, calib, evald, _ = tf_digits
    return convert(ConvertConfig(model=path, out=out, calib=calib, eval=evald, variants=("fp32", "int8"),
                                 preprocess=PreprocessOptions(preset="tf"), ptq=False, qat=False, selective=False,
                                 calib_samples=150, **kw))


@pytest.fixture(scope="module")
def grid_bundle(tf_digits, tmp_path_factory):
    return _convert(tf_digits, tmp_path_factory.mktemp("grid") / "bundle")


def test_every_pixel_lands_on_the_int8_input_grid_whichever_way_it_is_rounded(grid_bundle):
    from keras_edge.device.inputs.preprocess import quantize

    m = B.read_manifest(grid_bundle.bundle)
    assert m.preprocess.mean[0] / m.preprocess.scale == pytest.approx(127.0)   # 'tf': pixel 127.5 is zero
    assert "half a pixel step" in m.preprocess.reason
    int8 = m.variant("int8")
    spec = int8.inputs[0]
    assert spec.dtype == "uint8" and spec.zero_point == 127 and spec.scale == pytest.approx(1 / 127.5, rel=1e-6)
    p = np.arange(256, dtype=np.float32)
    x = (p * m.preprocess.scale - m.preprocess.mean[0]) / m.preprocess.std[0]   # the board's float input
    board = quantize(x, np.uint8, spec.scale, spec.zero_point)
    other = np.clip(np.rint(x / np.float32(spec.scale) + spec.zero_point), 0, 255)   # zero-point first
    assert np.array_equal(board, p.astype(np.uint8)) and np.array_equal(other, p)
    # so the two rounding orders measure the same file the same way
    assert int8.metrics["agreement"] == int8.metrics["agreement_bare"]
    assert int8.metrics["kl"] == pytest.approx(int8.metrics["kl_bare"], rel=1e-6)


def test_the_moved_half_step_is_exact_in_float(grid_bundle, tf_digits):
    """The fp32 file on the bundle's preprocessing answers like the user's model on its own ('tf')."""
    import cv2

    from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess
    from keras_edge.host.tflite import evaluate as E

    _, _, evald, model = tf_digits
    m = B.read_manifest(grid_bundle.bundle)
    files = sorted(evald.rglob("*.png"))[:64]
    imgs = [cv2.imread(str(f), cv2.IMREAD_UNCHANGED) for f in files]
    ours = np.stack([preprocess(im, m.preprocess) for im in imgs]).astype(np.float32)
    theirs = np.stack([preprocess(im, PreprocessSpec.from_preset("tf", SIZE, SIZE, 1)) for im in imgs]).astype(np.float32)
    assert np.allclose(ours - theirs, 0.5 / 127.5, atol=1e-6)
    got = E.predict(E.load_tflite(B.check_variant(grid_bundle.bundle, m.variant("fp32"))), [ours])[0]
    want = model.predict(theirs, verbose=0)
    assert np.max(np.abs(got - want)) < 1e-4


def test_int8_ends_in_a_float_softmax_over_integer_logits(grid_bundle):
    from keras_edge.api import open_bundle
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.softmax_head import has_float_head
    from keras_edge.host.tflite.variants import float_ops, op_counts

    m = B.read_manifest(grid_bundle.bundle)
    int8 = m.variant("int8")
    blob = B.check_variant(grid_bundle.bundle, int8).read_bytes()
    assert has_float_head(blob) and float_ops(blob) == [] and int8.outputs[0].dtype == "float32"
    assert op_counts(blob).get("SOFTMAX") == 1 and op_counts(blob).get("DEQUANTIZE") == 1
    x = np.random.default_rng(0).uniform(-1, 1, (16, SIZE, SIZE, 1)).astype(np.float32)
    y = E.predict(E.load_tflite(B.check_variant(grid_bundle.bundle, int8)), [x])[0]
    assert np.allclose(y.sum(1), 1.0, atol=1e-5)
    off_grid = np.abs(y * 256 - np.rint(y * 256)) > 1e-3     # not multiples of 1/256, as a uint8 softmax's are
    assert off_grid.mean() > 0.5
    with open_bundle(str(grid_bundle.bundle), variant="int8") as r:   # the board's runner takes it as it is
        res = r.run(x[:1])
        assert res.top and res.top[0].score == pytest.approx(float(y[0].max()), abs=1e-5)
        assert not any("not probabilities" in n for n in r.notes)


def test_the_opt_outs_keep_tensorflows_int8(tf_digits, tmp_path):
    from keras_edge.host.tflite.softmax_head import has_float_head

    res = _convert(tf_digits, tmp_path / "plain", float_softmax=False, pixel_grid=False)
    m = B.read_manifest(res.bundle)
    assert m.preprocess.mean[0] / m.preprocess.scale == pytest.approx(127.5)
    int8 = m.variant("int8")
    assert int8.outputs[0].dtype == "uint8" and not has_float_head(B.check_variant(res.bundle, int8).read_bytes())


def test_the_grid_stays_where_moving_it_would_not_be_exact(tmp_path):
    """A first layer that pads ('same') would see its zero padding move: the model keeps its input."""
    import keras

    from keras_edge.device.inputs.preprocess import PreprocessSpec
    from keras_edge.host.convert.pixelgrid import pixel_grid, shifted_mean

    tf_spec = PreprocessSpec.from_preset("tf", 8, 8, 3)
    assert shifted_mean(tf_spec) / tf_spec.scale == pytest.approx(127.0)
    assert shifted_mean(PreprocessSpec.from_preset("unit", 8, 8, 3)) is None      # pixels already on the grid
    assert shifted_mean(PreprocessSpec.from_preset("torch", 8, 8, 3)) is None     # per-channel mean/std
    keras.utils.set_random_seed(0)
    notes: list[str] = []
    x = np.linspace(-1, 1, 2 * SIZE * SIZE, dtype=np.float32).reshape(2, SIZE, SIZE, 1)
    spec = PreprocessSpec.from_preset("tf", SIZE, SIZE, 1)
    assert pixel_grid(_tf_cnn(keras, "same"), spec, x, notes.append, notes.append) is None
    assert "pad" in notes[-1]
    moved = pixel_grid(_tf_cnn(keras, "valid", bias=True), spec, x, notes.append)
    assert moved is not None and moved[1].mean[0] / spec.scale == pytest.approx(127.0)


def test_logits_model_cuts_a_dense_softmax(tf_digits):
    from keras_edge.host.tflite.softmax_head import logits_model

    model = tf_digits[3]
    head = logits_model(model)
    x = np.random.default_rng(1).uniform(-1, 1, (8, SIZE, SIZE, 1)).astype(np.float32)
    z = head.predict(x, verbose=0)
    e = np.exp(z - z.max(1, keepdims=True))
    assert np.allclose(e / e.sum(1, keepdims=True), model.predict(x, verbose=0), atol=1e-5)
