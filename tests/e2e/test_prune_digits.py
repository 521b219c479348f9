"""Pruning and distillation with real training on scikit-learn's digits (32×32, one channel).

One residual CNN (Conv, BatchNormalization, ReLU, Add, pooling, Flatten, Dense) is trained per module and
pruned both ways; pruned models are converted to int8 and run in LiteRT.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
L = keras.layers

from keras_edge.host.prune import prune_model  # noqa: E402
from keras_edge.host.prune.graph import clone, count_flops  # noqa: E402

PRUNABLE = (L.Conv2D, L.DepthwiseConv2D, L.Dense)


@pytest.fixture(scope="module")
def digits():
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import digits_images

    imgs, labels = digits_images()
    x = imgs[..., None].astype(np.float32) / 255.0
    tr, te = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    return x[tr], labels[tr], x[te], labels[te]


def residual_cnn():
    i = keras.Input((32, 32, 1))
    r = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.Conv2D(16, 3, padding="same", name="stem")(i)))
    h = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.Conv2D(16, 3, padding="same", name="c1")(r)))
    h = L.BatchNormalization(momentum=0.9)(L.Conv2D(16, 3, padding="same", name="c2")(h))
    r = L.MaxPooling2D()(L.ReLU()(L.Add()([r, h])))
    h = L.ReLU()(L.BatchNormalization(momentum=0.9)(L.Conv2D(32, 3, padding="same", name="c3")(r)))
    h = L.Flatten()(L.MaxPooling2D()(h))
    return keras.Model(i, L.Dense(10, name="logits")(h), name="digits_resnet")


@pytest.fixture(scope="module")
def trained(digits):
    x, y, *_ = digits
    keras.utils.set_random_seed(0)
    m = residual_cnn()
    m.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x, y, epochs=5, batch_size=32, verbose=0)
    return m


def kernel_zero_fraction(model):
    sizes = [(np.asarray(l.kernel).size, int((np.asarray(l.kernel) == 0).sum()))
             for l in model.layers if type(l) in PRUNABLE]
    return sum(z for _, z in sizes) / sum(n for n, _ in sizes)


@pytest.mark.parametrize(("sparsity", "schedule"), [(0.5, "polynomial"), (0.8, "constant")])
def test_magnitude_pruning_reaches_the_sparsity_and_keeps_accuracy(digits, trained, sparsity, schedule):
    x, y, xv, yv = digits
    r = prune_model(trained, "magnitude", sparsity, x, y, epochs=2, x_val=xv, y_val=yv, schedule=schedule, verbose=0)
    assert abs(kernel_zero_fraction(r.model) - sparsity) <= 0.01
    assert abs(r.achieved - sparsity) <= 0.01 and all(abs(l.sparsity - sparsity) < 0.02 for l in r.layers)
    assert kernel_zero_fraction(trained) == 0.0, "the input model must be left untouched"
    assert not r.model.compiled and all(v.constraint is None for v in r.model.weights)
    assert r.accuracy_before > 0.9 and r.accuracy_after > r.accuracy_before - 0.03


def test_masks_hold_through_every_optimizer_step(digits, trained):
    """Adam moves a zeroed weight again unless the mask constraint puts it back after each step."""
    from keras_edge.host.prune.magnitude import _KeepMasked, apply_masks

    x, y, *_ = digits
    m = clone(trained)
    layer = m.get_layer("c1")
    mask = keras.Variable(np.ones(layer.kernel.shape, np.float32), trainable=False)
    layer.kernel.constraint = _KeepMasked(mask)
    apply_masks([(layer.kernel, mask)], 0.6)
    zeros = []
    cb = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: zeros.append(
        int((np.asarray(layer.kernel) == 0).sum())))
    m.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(x[:320], y[:320], epochs=1, batch_size=32, verbose=0, callbacks=[cb])
    assert len(zeros) == 10 and min(zeros) >= round(0.6 * np.prod(layer.kernel.shape))


def zero_inputs(model, cuts):
    """Copy of ``model`` whose layers ignore the given input channels: {layer: indices along its input}."""
    ref = clone(model)
    for name, idx in cuts.items():
        ws = ref.get_layer(name).get_weights()
        ws[0][..., idx, :] = 0.0
        ref.get_layer(name).set_weights(ws)
    return ref


def test_channel_pruning_computes_the_surviving_channels_of_the_residual_model(digits, trained):
    x, *_ = digits
    r = prune_model(trained, "channels", 0.5, epochs=0)
    kept = {l.name: np.array(l.kept) for l in r.layers}
    assert list(kept["stem"]) == list(kept["c2"]), "channels tied by Add must be pruned together"
    assert len(kept["stem"]) == 8 and len(kept["c1"]) == 8 and len(kept["c3"]) == 16
    assert r.params_after < r.params_before and r.flops_after < 0.4 * r.flops_before
    assert count_flops(r.model) == r.flops_after
    gone = {k: np.setdiff1d(np.arange(16 if k != "c3" else 32), v) for k, v in kept.items()}
    stem = keras.Model(trained.input, trained.get_layer("stem").output)
    stem_pruned = keras.Model(r.model.input, r.model.get_layer("stem").output)
    np.testing.assert_allclose(stem_pruned.predict(x[:16], verbose=0),
                               stem.predict(x[:16], verbose=0)[..., kept["stem"]], rtol=1e-5, atol=1e-5)
    flat = (np.arange(64)[:, None] * 32 + gone["c3"]).ravel()  # Flatten of 8×8×32: channels innermost
    ref = zero_inputs(trained, {"c1": gone["stem"], "c3": gone["stem"], "c2": gone["c1"], "logits": flat})
    np.testing.assert_allclose(r.model.predict(x[:64], verbose=0), ref.predict(x[:64], verbose=0),
                               rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def channel_pruned(digits, trained):
    x, y, xv, yv = digits
    return prune_model(trained, "channels", 0.5, x, y, epochs=2, x_val=xv, y_val=yv, verbose=0)


def test_fine_tuning_recovers_the_channel_pruned_model(channel_pruned):
    r = channel_pruned
    assert r.accuracy_before > 0.9 and r.accuracy_after > r.accuracy_before - 0.03
    assert not r.model.compiled


def test_distillation_trains_a_pruned_student_past_its_start(digits, trained):
    from keras_edge.host.prune.distill import DistillConfig, distill

    x, y, xv, yv = digits
    student = prune_model(trained, "channels", 0.75, epochs=0, channel_multiple=1).model
    res = distill(trained, student, x, y, DistillConfig(temperature=4.0, alpha=0.7, epochs=2, verbose=0), xv, yv)
    assert res.student_accuracy_after > max(res.student_accuracy_before + 0.1, 0.85)
    assert res.model.count_params() == student.count_params() and not res.model.compiled


def run_tflite(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    from keras_edge.device.inputs.preprocess import dequantize, quantize

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    outs = []
    for xi in x:
        it.set_tensor(inp["index"], quantize(xi[None], inp["dtype"], *inp["quantization"]))
        it.invoke()
        outs.append(dequantize(it.get_tensor(out["index"]), *out["quantization"]))
    return np.concatenate(outs)


def test_pruned_model_converts_to_int8_and_agrees_with_keras(digits, channel_pruned):
    from keras_edge.host.tflite.variants import ConvertInputs, convert

    x, _, xv, yv = digits
    data, _ = convert(channel_pruned.model, "int8", ConvertInputs(calib=[x[:100]]))
    got = run_tflite(data, xv[:120]).argmax(1)
    want = channel_pruned.model.predict(xv[:120], verbose=0).argmax(1)
    assert np.mean(got == want) >= 0.95 and np.mean(got == yv[:120]) > 0.85
