"""keras.applications.MobileNetV2 (alpha 0.35, 96×96, random weights): channel-prune, int8, run."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")


@pytest.mark.slow
def test_mobilenet_v2_channel_prunes_converts_to_int8_and_runs():
    from keras_edge.device.inputs.preprocess import dequantize, quantize
    from tests.support import digits_rgb, settle_batchnorm
    from keras_edge.host.prune import prune_model
    from keras_edge.host.prune.graph import count_flops
    from keras_edge.host.tflite.variants import ConvertInputs, convert

    keras.utils.set_random_seed(0)
    m = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10,
                                       classifier_activation=None)
    x = digits_rgb(96, 120)  # real images, as 96×96 RGB in [-1, 1] (MobileNetV2's preprocessing)
    settle_batchnorm(m, x[:64])
    r = prune_model(m, "channels", 0.5, epochs=0)
    assert [s.name for s in r.skipped] == ["predictions"], "only the classifier (the model output) stays whole"
    convs = [l.name for l in m.layers if isinstance(l, keras.layers.Conv2D)]
    assert {l.name for l in r.layers} == set(convs), "every 1×1/3×3 convolution's channels are pruned"
    assert r.params_after < 0.5 * r.params_before and r.flops_after < 0.5 * r.flops_before
    assert count_flops(r.model) == r.flops_after

    data, _ = convert(r.model, "int8", ConvertInputs(calib=[x[:64]]))

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 96, 96, 3) and inp["dtype"] in (np.int8, np.uint8)
    got = []
    for xi in x[64:]:
        it.set_tensor(inp["index"], quantize(xi[None], inp["dtype"], *inp["quantization"]))
        it.invoke()
        got.append(dequantize(it.get_tensor(out["index"]), *out["quantization"]))
    got = np.concatenate(got)
    want = r.model.predict(x[64:], verbose=0)
    assert got.shape == (56, 10) and np.isfinite(got).all()
    assert want.std() > 0.05, "the reference logits must not be degenerate"
    assert np.abs(got - want).max() < 0.15 * want.std() and np.mean(got.argmax(1) == want.argmax(1)) >= 0.9
