"""Raw map outputs (an edge/stroke map) are scored in their own terms, drawn as a map, and a model whose
outputs never vary is said to be so once, with no int8 search on it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B

SIZE = 32


def _map_model(keras, L):
    """HED-like: a few convolutions to a one-channel sigmoid map the size of the input."""
    inp = keras.Input((SIZE, SIZE, 1))
    h = L.Rescaling(1 / 255)(inp)
    h = L.Conv2D(12, 3, padding="same", activation="relu")(h)
    h = L.Conv2D(12, 3, padding="same", activation="relu")(h)
    return keras.Model(inp, L.Conv2D(1, 1, activation="sigmoid", name="strokes")(h), name="stroke_map")


@pytest.fixture(scope="module")
def stroke_bundle(digits_demo, tmp_path_factory):
    """Trained on scikit-learn's digits to mark the pixels of a digit's strokes; converted fp32 + int8."""
    import keras
    from keras import layers as L

    from keras_edge.demo import digits_images
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.tfenv import captured_output, import_tf

    import_tf()
    imgs, _ = digits_images(SIZE)
    x = imgs[..., None].astype(np.float32)
    keras.utils.set_random_seed(0)
    model = _map_model(keras, L)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    with captured_output():
        model.fit(x[:1200], (x[:1200] > 100).astype(np.float32), epochs=3, batch_size=64, verbose=0)
    out = tmp_path_factory.mktemp("strokes") / "bundle"
    lines: list[str] = []
    res = convert(ConvertConfig(model=model, out=out, calib=digits_demo.train, eval=digits_demo.eval,
                                variants=("fp32", "int8"), calib_samples=48, eval_samples=60, selective=False,
                                ptq=False, qat=False, max_accuracy_drop=0.05), log=lines.append)
    return model, res, lines


def test_a_map_output_is_scored_in_its_own_terms(stroke_bundle):
    from keras_edge.host.report.render import RAW_COLUMNS, columns, table

    _, res, lines = stroke_bundle
    int8 = B.read_manifest(res.bundle).variant("int8")
    m = int8.metrics
    assert m["agreement"] is None and m["map_threshold"] == 0.5 and m["map_threshold_kind"] == "0.5 (probabilities)"
    assert m["map_f1"] >= 0.9 and 0.8 <= m["map_iou"] <= m["map_f1"], m
    assert 0 < m["rel_err"] < 0.2 and m["rel_err"] == pytest.approx(10 ** (-m["snr_db"] / 20), rel=1e-3)
    report = res.report.to_dict()
    assert columns(report) == RAW_COLUMNS
    row = next(r for r in table(report).splitlines() if r.startswith("int8 "))
    assert f"{m['rel_err'] * 100:.2f}%" in row and f"{m['map_f1']:.3f}" in row
    text = m["verdict"]["text"]
    assert "relative RMS error" in text and "one image" not in text and " pp" not in text
    md = (res.bundle / B.REPORT_MD).read_text()
    assert "`map F1` / `map IoU` compare the pixels above 0.5 (0.5 (probabilities))" in md
    assert any("rel err" in ln and "map F1" in ln for ln in lines if ln.startswith("[2/2] int8"))


def test_run_draw_renders_the_map_over_the_image(stroke_bundle, digits_demo, tmp_path, capsys):
    _, res, _ = stroke_bundle
    image = sorted(digits_demo.eval.rglob("*.png"))[0]
    draw = tmp_path / "drawn"
    code = main(["run", str(res.bundle), str(image), "--draw", str(draw), "--variant", "int8"])
    err = capsys.readouterr().err
    assert code == 0, err
    drawn, original = cv2.imread(str(draw / image.name)), cv2.imread(str(image))
    assert drawn.shape == original.shape
    # the strokes (bright in the input) are coloured differently from the background
    strokes = cv2.cvtColor(original, cv2.COLOR_BGR2GRAY) > 150
    assert np.abs(drawn[strokes].mean(0) - drawn[~strokes].mean(0)).max() > 40
    assert np.abs(drawn.astype(int) - original.astype(int)).mean() > 10


def test_constant_outputs_are_said_once_and_not_searched(digits_demo, tmp_path):
    """Untrained, with every last-layer weight at zero: the same two numbers per pixel for every input."""
    import keras
    from keras import layers as L

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.convert.choose import loss_of

    keras.utils.set_random_seed(0)
    inp = keras.Input((SIZE, SIZE, 1))
    h = L.Conv2D(8, 3, padding="same", activation="relu")(L.Rescaling(1 / 255)(inp))
    last = L.Conv2D(2, 1, name="flat")
    model = keras.Model(inp, last(h))
    last.set_weights([np.zeros((1, 1, 8, 2), np.float32), np.array([5.0, 0.013], np.float32)])
    lines: list[str] = []
    budget = 1e-4
    res = convert(ConvertConfig(model=model, out=tmp_path / "b", calib=digits_demo.train, eval=digits_demo.eval,
                                variants=("fp32", "int8"), calib_samples=32, eval_samples=40,
                                max_accuracy_drop=budget), log=lines.append)
    int8 = B.read_manifest(res.bundle).variant("int8")
    assert int8.status is B.VariantStatus.OK and loss_of(int8.metrics, None) > budget   # int8 misses: a search would run
    said = [ln for ln in lines if "hardly vary" in ln]
    assert len(said) == 1 and said[0].startswith("note: the Keras model's outputs hardly vary across the 40")
    assert sum("hardly vary" in n for n in res.report.notes) == 1
    assert res.report.ptq is None and res.report.selective is None
    assert [v.name for v in res.variants] == ["fp32", "int8"]
    assert not any("int8-selective" in ln or "int8-ptq" in ln or "exceeds" in ln for ln in lines if ln not in said)


def test_a_variant_whose_evaluation_would_overrun_its_bound_says_so(digits_demo, tmp_path):
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.errors import ConversionError

    with pytest.raises(ConversionError, match=r"fp32: not evaluated: one inference takes [0-9.]+s here, so 30 "
                                              r"evaluation inputs and the timing runs would take ~\d+ min, over the 0s "
                                              r"bound \(--eval-time\)"):
        convert(ConvertConfig(model=digits_demo.model, out=tmp_path / "b", calib=digits_demo.train,
                              eval=digits_demo.eval, variants=("fp32",), calib_samples=16, eval_samples=30,
                              eval_time=1e-6))
    assert not (tmp_path / "b").exists()   # nothing half-written
