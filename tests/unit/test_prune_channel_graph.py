"""Channel pruning's graph walk on small models with random weights (no training needed).

The reference for "outputs of the surviving channels" is the unpruned model with every consumer's
weights for the removed input channels set to zero: it computes exactly what the pruned model
should, with the original architecture, so the two must agree to float rounding.
"""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
L = keras.layers

from keras_edge.device.contract.errors import ConfigError, ModelError  # noqa: E402
from keras_edge.host.prune.channels import keep_count, plan_and_rebuild  # noqa: E402
from keras_edge.host.prune.graph import clone, count_flops  # noqa: E402


def randomize(model, seed=0):
    """Random weights everywhere (BN statistics included) so that no check passes by accident."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.get_weights()]
        if isinstance(layer, L.BatchNormalization):
            ws[-1] = np.abs(ws[-1]) + 0.5  # a variance
        layer.set_weights(ws)
    return model


def removed(report, plan):
    r = next(x for x in plan.layers if x.name == report)
    return np.array(sorted(set(range(r.before)) - set(r.kept)), int)


def zero_inputs(model, cuts):
    """Copy of ``model`` whose layers ignore the given input channels: {layer: indices along its input}."""
    ref = clone(model)
    for name, idx in cuts.items():
        layer = ref.get_layer(name)
        ws = layer.get_weights()
        k = 1 if isinstance(layer, L.SeparableConv2D) else 0
        if isinstance(layer, L.SeparableConv2D):
            dm = layer.depth_multiplier
            idx = (np.asarray(idx)[:, None] * dm + np.arange(dm)).ravel()
        ws[k][..., idx, :] = 0.0
        layer.set_weights(ws)
    return ref


def assert_same_outputs(pruned, ref, shape, seed=3):
    x = np.random.default_rng(seed).normal(size=(4,) + shape).astype(np.float32)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-4, atol=1e-4)


def test_chain_with_bn_pooling_flatten_and_dense_matches_the_surviving_channels():
    i = keras.Input((8, 8, 3))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="a")(i)))
    h = L.SeparableConv2D(6, 3, padding="same", depth_multiplier=2, name="b")(h)
    h = L.Flatten()(L.MaxPooling2D()(L.PReLU()(L.BatchNormalization()(h))))
    h = L.Dense(5, activation="relu", name="d")(L.Dropout(0.2)(h))
    m = randomize(keras.Model(i, L.Dense(3, name="out")(h)))
    pruned, plan = plan_and_rebuild(m, 0.5)
    assert {r.name: (r.before, r.after) for r in plan.layers} == {"a": (8, 4), "b": (6, 3), "d": (5, 2)}
    rb = removed("b", plan)
    flat = (np.arange(16)[:, None] * 6 + rb).ravel()  # 4×4 positions after pooling, channels innermost
    ref = zero_inputs(m, {"b": removed("a", plan), "d": flat, "out": removed("d", plan)})
    assert_same_outputs(pruned, ref, (8, 8, 3))
    assert pruned.count_params() < m.count_params() and count_flops(pruned) < count_flops(m)
    assert [s.name for s in plan.skipped] == ["out"] and "model output" in plan.skipped[0].reason


def test_residual_add_prunes_tied_channels_as_one_group():
    i = keras.Input((8, 8, 2))
    r = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="stem")(i)))
    h = L.ReLU()(L.BatchNormalization()(L.Conv2D(6, 3, padding="same", name="c1")(r)))
    h = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="c2")(h))
    r = L.ReLU()(L.Add()([r, h]))
    h = L.Conv2D(8, 1, name="c3")(r)
    r = L.Multiply()([r, L.Activation("sigmoid")(h)])  # a gate: c3 ties into the group too
    h = L.GlobalAveragePooling2D()(L.Conv2D(10, 3, strides=2, name="c4")(r))
    m = randomize(keras.Model(i, L.Dense(3, name="out")(h)))
    pruned, plan = plan_and_rebuild(m, 0.5)
    kept = {r.name: r.kept for r in plan.layers}
    assert kept["stem"] == kept["c2"] == kept["c3"] and len(kept["stem"]) == 4
    tied = removed("stem", plan)
    ref = zero_inputs(m, {"c1": tied, "c3": tied, "c4": tied, "c2": removed("c1", plan), "out": removed("c4", plan)})
    assert_same_outputs(pruned, ref, (8, 8, 2))


def test_concatenate_and_depthwise_map_channels_through_offsets():
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, padding="same", name="a")(i)
    b = L.Conv2D(4, 1, name="b")(i)
    h = L.Concatenate()([a, b])
    h = L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(h))
    h = L.GlobalMaxPooling2D()(L.Conv2D(5, 3, name="c")(L.ZeroPadding2D(1)(h)))
    m = randomize(keras.Model(i, L.Dense(2, name="out")(h)))
    pruned, plan = plan_and_rebuild(m, 0.5)
    cut = np.concatenate([removed("a", plan), 8 + removed("b", plan)])
    ref = zero_inputs(m, {"c": cut, "out": removed("c", plan)})
    assert_same_outputs(pruned, ref, (8, 8, 3))
    assert pruned.get_layer("c").kernel.shape == (3, 3, 6, 2)  # 12 → 6 in, 5 → 2 out


def test_unsupported_layers_are_named_and_their_channels_kept_whole():
    i = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 3, name="a")(i)
    b = L.Conv2D(6, 3, name="b")(L.LayerNormalization(name="ln")(a))  # normalises across channels
    c = L.Conv2D(3, 1, name="c")(i)
    d = L.Conv2D(6, 3, name="d")(L.Add()([c, i]))  # c is tied to the model input
    h = L.Concatenate()([L.GlobalAveragePooling2D()(b), L.GlobalAveragePooling2D()(d)])
    m = randomize(keras.Model(i, L.Dense(2, name="out")(h)))
    pruned, plan = plan_and_rebuild(m, 0.5)
    skipped = {s.name: s.reason for s in plan.skipped}
    assert set(skipped) == {"ln", "a", "c", "out"}
    assert "LayerNormalization is not supported" in skipped["ln"]
    assert "feeds ln (LayerNormalization" in skipped["a"]
    assert "model input" in skipped["c"] and "model output" in skipped["out"]
    assert {r.name for r in plan.layers} == {"b", "d"}
    ref = zero_inputs(m, {"out": np.concatenate([removed("b", plan), 6 + removed("d", plan)])})
    assert_same_outputs(pruned, ref, (8, 8, 3))


def test_softmax_across_channels_pins_them():
    i = keras.Input((4, 4, 2))
    h = L.Conv2D(8, 1, name="a")(i)
    h = L.Activation("softmax", name="sm")(h)
    h = L.GlobalAveragePooling2D()(L.Conv2D(6, 1, activation="softmax", name="b")(h))
    m = keras.Model(i, L.Dense(2, name="out")(h))
    with pytest.raises(ModelError, match="nothing in model .* can be channel-pruned"):
        plan_and_rebuild(m, 0.5)


def test_a_model_with_nothing_to_prune_is_one_clear_error():
    i = keras.Input((4,))
    m = keras.Model(i, L.Dense(3)(i), name="tiny")
    with pytest.raises(ModelError) as e:
        plan_and_rebuild(m, 0.5)
    assert "nothing in model 'tiny' can be channel-pruned" in str(e.value) and "the magnitude method" in e.value.fix


def test_subclassed_models_are_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = L.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(ModelError, match="subclassed"):
        plan_and_rebuild(net, 0.5)


def test_bn_criterion_keeps_the_channels_with_the_largest_scale():
    i = keras.Input((6, 6, 2))
    h = L.BatchNormalization(name="bn")(L.Conv2D(6, 3, name="a")(i))
    m = keras.Model(i, L.Dense(2, name="out")(L.GlobalAveragePooling2D()(h)))
    bn = m.get_layer("bn")
    ws = bn.get_weights()
    ws[0] = np.array([0.1, 3.0, 0.2, 2.0, 0.3, 1.0], np.float32)
    bn.set_weights(ws)
    _, plan = plan_and_rebuild(m, 0.5, "bn")
    assert plan.layers[0].kept == (1, 3, 5)


def test_sequential_models_prune_like_functional_ones():
    m = randomize(keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="a"), L.ReLU(),
                                    L.GlobalAveragePooling2D(), L.Dense(4, name="out")]))
    pruned, plan = plan_and_rebuild(m, 0.25)
    assert isinstance(pruned, keras.Sequential) and plan.layers[0].after == 6
    assert_same_outputs(pruned, zero_inputs(m, {"out": removed("a", plan)}), (8, 8, 1))


def test_flops_count_conv_and_dense_multiply_adds():
    i = keras.Input((8, 8, 2))
    h = L.Conv2D(4, 3, padding="same")(i)                 # 64 positions · 3·3·2·4
    h = L.DepthwiseConv2D(3, strides=2, padding="same")(h)  # 16 positions · 3·3·4
    out = L.Dense(3)(L.Flatten()(h))                        # 64 · 3
    m = keras.Model(i, out)
    assert count_flops(m) == 2 * (64 * 72 + 16 * 36 + 64 * 3)


def test_a_model_without_a_fixed_input_size_prunes_and_says_flops_are_unknown():
    i = keras.Input((None, None, 3))
    h = L.GlobalAveragePooling2D()(L.ReLU()(L.Conv2D(8, 3, name="a")(i)))
    m = randomize(keras.Model(i, L.Dense(2, name="out")(h)))
    pruned, plan = plan_and_rebuild(m, 0.5)
    assert count_flops(m) is None and plan.layers[0].after == 4
    assert_same_outputs(pruned, zero_inputs(m, {"out": removed("a", plan)}), (9, 7, 3))


@pytest.mark.parametrize(("channels", "sparsity", "multiple", "kept"), [
    (32, 0.3, 1, 22), (32, 0.3, 8, 24), (32, 0.3, 16, 16), (5, 0.5, 1, 2), (3, 0.9, 1, 1),
    (8, 0.5, 8, 8), (12, 0.5, 16, 12), (96, 0.5, 16, 48),
])
def test_keep_count_rounds_to_simd_friendly_multiples(channels, sparsity, multiple, kept):
    assert keep_count(channels, sparsity, multiple) == kept


def test_a_sparsity_that_removes_nothing_is_an_error_not_a_silent_copy():
    i = keras.Input((8, 8, 1))
    m = keras.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(8, 3)(i))), name="small")
    with pytest.raises(ConfigError) as e:
        plan_and_rebuild(m, 0.3, multiple=8)
    assert e.value.field == "channel_multiple"
    assert "8 keeps every channel of model 'small' at sparsity 0.3" in str(e.value)
    assert "give 1 to keep exact channel counts" in e.value.fix
