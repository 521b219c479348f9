"""The digits CNN, trained in this session, converted to every variant and run through LiteRT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from keras_edge.device.contract import bundle as B
from keras_edge.cli import main
from keras_edge.device.inputs.preprocess import quantize, dequantize
from keras_edge.host.tflite.variants import VARIANTS


def _run_all(path, x):
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    ys = []
    for sample in x:
        it.set_tensor(inp["index"], quantize(sample[None], inp["dtype"], *inp["quantization"]))
        it.invoke()
        ys.append(dequantize(it.get_tensor(out["index"]), *out["quantization"])[0])
    return np.stack(ys)


def test_every_variant_converts_validates_and_is_recorded(digits_bundle):
    m = B.read_manifest(digits_bundle.bundle)
    assert [v.name for v in m.variants] == list(VARIANTS)
    for v in m.variants:
        assert v.status is B.VariantStatus.OK, (v.name, v.reason)
        assert B.check_variant(digits_bundle.bundle, v).stat().st_size == v.bytes
        assert v.tolerance is not None and v.tolerance.max_abs > 0


def test_each_variant_reproduces_keras_on_the_reference_inputs(digits_bundle):
    m = B.read_manifest(digits_bundle.bundle)
    ref = np.load(digits_bundle.bundle / B.REFERENCE)
    assert len(set(ref["output_0"].argmax(1).tolist())) == len(ref["output_0"])  # one sample per class
    for v in m.variants:
        y = _run_all(digits_bundle.bundle / v.file, ref["input_0"])
        assert np.abs(y - ref["output_0"]).max() <= v.tolerance.max_abs, v.name
        assert np.mean(y.argmax(1) == ref["output_0"].argmax(1)) >= v.tolerance.min_agreement, v.name


def test_int8_meets_the_accuracy_and_size_targets(digits_bundle):
    rows = {r.name: r for r in digits_bundle.variants}
    keras_acc = digits_bundle.keras["accuracy"]
    assert keras_acc > 0.9  # the model really learned the digits
    assert rows["int8"].metrics["accuracy"] >= keras_acc - 0.01
    assert rows["int8"].bytes <= 0.30 * rows["fp32"].bytes
    m = B.read_manifest(digits_bundle.bundle)
    int8 = m.variant("int8")
    # integer input; the classifier's softmax runs in float over int8 logits (host/tflite/softmax_head.py)
    assert int8.inputs[0].dtype == "uint8" and int8.outputs[0].dtype == "float32"
    # the model starts with Rescaling, so raw pixels go straight in: scale 1, zero point 0
    assert int8.inputs[0].scale == pytest.approx(1.0, rel=1e-3) and int8.inputs[0].zero_point == 0


def test_manifest_records_the_preprocessing_labels_and_sources(digits_bundle, digits_demo):
    m = B.read_manifest(digits_bundle.bundle)
    assert m.preprocess.preset == "raw" and "Rescaling" in m.preprocess.reason
    assert (m.preprocess.height, m.preprocess.width, m.preprocess.channels) == (32, 32, 1)
    assert B.read_labels(digits_bundle.bundle, m) == [str(i) for i in range(10)]
    assert m.source["sha256"] == B.sha256_file(digits_demo.model)
    assert m.default in {v.name for v in m.variants} and m.default_reason
    assert set(m.tools) >= {"tensorflow", "keras", "keras-edge"}


def test_report_files_describe_every_variant(digits_bundle):
    report = json.loads((digits_bundle.bundle / B.REPORT_JSON).read_text())
    assert [r["name"] for r in report["variants"]] == list(VARIANTS)
    md = (digits_bundle.bundle / B.REPORT_MD).read_text()
    for name in VARIANTS:
        assert f"| {name} |" in md
    assert report["keras"]["predict_ms"] > 0 and "vs keras" in md


def test_report_png_is_a_valid_image_and_report_command_regenerates_it(digits_bundle, capsys):
    import cv2

    png = digits_bundle.bundle / "report.png"
    png.unlink()
    assert main(["report", str(digits_bundle.bundle)]) == 0
    assert "int8" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(png))
    assert img is not None and img.shape[0] > 200 and img.shape[1] > 400
    assert img.std() > 10  # not a blank canvas


def test_cli_convert_writes_a_bundle_and_json(digits_demo, tmp_path, capsys):
    out = tmp_path / "cli bundle ü"  # spaces and non-ASCII in paths
    code = main(["convert", str(digits_demo.model), "-o", str(out), "--calib", str(digits_demo.train),
                 "--variants", "fp32,int8", "--calib-samples", "50", "--eval-samples", "60", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert [v["name"] for v in result["variants"]] == ["fp32", "int8"]
    assert "held-out" in captured.err  # evaluation came from a split of --calib, and it says so
    m = B.read_manifest(out)
    assert {v.status for v in m.variants} == {B.VariantStatus.OK}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial directories left


def test_bake_preprocess_folds_normalisation_into_the_graph(digits_demo, tmp_path):
    """A model without a Rescaling layer, converted with --preprocess unit and --bake-preprocess, takes raw pixels."""
    import keras

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions

    src = keras.models.load_model(digits_demo.model)
    inner = keras.Model(src.layers[2].input, src.output)  # drop Input + Rescaling: expects [0, 1] inputs
    path = tmp_path / "unit.keras"
    inner.save(path)
    res = convert(ConvertConfig(model=path, out=tmp_path / "b", calib=digits_demo.train, eval=digits_demo.eval,
                                variants=("fp32", "int8"), preprocess=PreprocessOptions(preset="unit"), bake_preprocess=True, calib_samples=60,
                                eval_samples=60))
    m = res.manifest
    assert m.preprocess.baked
    ref = np.load(res.bundle / B.REFERENCE)
    assert ref["input_0"].max() > 1.5  # raw 0..255 pixels go in
    rows = {r.name: r for r in res.variants}
    assert rows["fp32"].metrics["agreement"] == 1.0
    assert rows["int8"].metrics["agreement"] >= 0.97


def test_prune_adds_pruned_variants_that_compute_less(digits_demo, tmp_path, capsys):
    out = tmp_path / "pruned"
    code = main(["convert", str(digits_demo.model), "-o", str(out), "--calib", str(digits_demo.train),
                 "--eval", str(digits_demo.eval), "--variants", "int8", "--prune", "channels:0.5",
                 "--prune-epochs", "1", "--calib-samples", "60", "--eval-samples", "100", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    m = B.read_manifest(out)
    assert [v.name for v in m.variants] == ["int8", "int8-pruned-channels"]
    pruned = m.variant("int8-pruned-channels")
    assert pruned.status is B.VariantStatus.OK
    info = pruned.metrics["pruning"]
    assert info["params_after"] < 0.5 * info["params_before"] and info["flops_after"] < 0.5 * info["flops_before"]
    assert pruned.bytes < 0.6 * m.variant("int8").bytes
    assert pruned.metrics["accuracy"] > 0.8  # fine-tuned with distillation, still a digit classifier
    assert "pruning: channels at 50%" in captured.err


def test_prune_spec_errors_are_one_line(digits_demo, tmp_path, capsys):
    code = main(["convert", str(digits_demo.model), "-o", str(tmp_path / "x"), "--calib", str(digits_demo.train),
                 "--prune", "channels:1.5"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "outside (0, 1)" in err
    assert not (tmp_path / "x").exists()
