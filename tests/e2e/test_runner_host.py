"""The runner on models keras-edge did not make (built and converted here with TensorFlow), and the
import rule checked where TensorFlow *is* installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_edge.cli import main

from runner_models import convert, multi_io_model


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def multi_io(tmp_path_factory):
    """A two-input/two-output model as float32-I/O and int8-I/O .tflite files, plus sample arrays."""
    model = multi_io_model("float32")
    rng = np.random.default_rng(0)
    calib_img = rng.integers(0, 256, (16, 16, 16, 3)).astype(np.float32)
    calib_vec = rng.normal(size=(16, 4)).astype(np.float32)
    import tensorflow as tf

    root = tmp_path_factory.mktemp("multi io")
    files = {"float32": root / "multi_fp32.tflite", "int8": root / "multi_int8.tflite"}
    files["float32"].write_bytes(convert(model, "fp32"))
    from ai_edge_litert.interpreter import Interpreter

    # the converter orders inputs its own way; arrays are keyed by tensor name, which the runner accepts
    names = [d["name"] for d in Interpreter(model_path=str(files["float32"])).get_input_details()]
    by_name = {n: (calib_img if "image" in n else calib_vec) for n in names}
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([by_name[n][i:i + 1] for n in names] for i in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    files["int8"].write_bytes(conv.convert())
    np.savez(root / "batch.npz", **{n: by_name[n][:3] for n in names})
    return files, root / "batch.npz", model.predict([calib_img[:3], calib_vec[:3]], verbose=0)


@pytest.mark.parametrize("io", ["float32", "int8"])
def test_several_inputs_and_outputs_from_arrays(capsys, multi_io, tmp_path, io):
    files, batch, want = multi_io
    out_dir = tmp_path / "outs"
    code, out, err = cli(capsys, "run", files[io], batch, "--json", "--save-outputs", out_dir)
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 3 and all(len(r["outputs"]) == 2 for r in rows)
    # outputs are saved dequantized, matched to the Keras outputs by shape (TFLite may reorder them)
    saved = [[np.load(o["file"]) for o in r["outputs"]] for r in rows]
    tol = 1e-4 if io == "float32" else 0.1
    for k in range(3):
        for w in want:
            got = next(s for s in saved[k] if s.shape[1:] == w.shape[1:])
            assert np.max(np.abs(got[0] - w[k])) <= tol
    assert sorted(p.suffix for p in out_dir.iterdir()) == [".npy"] * 6


def test_images_cannot_feed_a_two_input_model(capsys, multi_io, tmp_path):
    import cv2

    files, _, _ = multi_io
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((16, 16, 3), np.uint8))
    code, _, err = cli(capsys, "run", files["float32"], tmp_path / "a.png")
    assert code == 2 and "takes 2 input(s) that images cannot feed" in err.replace("\n", " ")


def test_dynamic_input_shape_is_resized_before_allocation(capsys, tmp_path):
    import cv2
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(4, 3)(keras.layers.Rescaling(1 / 255)(inp))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
    path = tmp_path / "dynamic.tflite"
    path.write_bytes(convert(model, "fp32"))
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "i.png"), img)
    code, _, err = cli(capsys, "run", path, tmp_path / "i.png")
    assert code == 2 and "dynamic shape" in err and "--input-shape" in err
    code, out, err = cli(capsys, "run", path, tmp_path / "i.png", "--input-shape", "24,24,3", "--preprocess", "raw",
                         "--json")
    assert code == 0, err
    want = model.predict(cv2.resize(img[:, :, ::-1], (24, 24), interpolation=cv2.INTER_LINEAR)[None].astype(np.float32),
                         verbose=0)[0]
    top = json.loads(out)["top_k"][0]
    assert top["index"] == int(np.argmax(want)) and abs(top["score"] - float(want.max())) < 1e-4


def test_tensorflow_lite_runtime_when_forced(capsys, tmp_path, multi_io, monkeypatch):
    from keras_edge.device.engine import runtime

    files, batch, _ = multi_io
    monkeypatch.setenv(runtime.RUNTIME_ENV, "tensorflow.lite")
    code, out, err = cli(capsys, "run", files["int8"], batch, "--json")
    assert code == 0, err
    assert {json.loads(x)["runtime"] for x in out.splitlines()} == {"tensorflow.lite"}
    monkeypatch.setenv(runtime.RUNTIME_ENV, "no_such_runtime")
    code, _, err = cli(capsys, "run", files["int8"], batch)
    assert code == 2 and "unknown runtime 'no_such_runtime'" in err


def test_device_commands_do_not_import_tensorflow_even_when_installed(tmp_path, multi_io):
    files, batch, _ = multi_io
    code = ("import sys, json; from keras_edge.cli import main\n"
            f"assert main(['run', {str(files['int8'])!r}, {str(batch)!r}, '--json']) == 0\n"
            f"assert main(['bench', {str(files['int8'])!r}, '--runs', '2', '--min-seconds', '0', '--json']) == 0\n"
            "for c in ('run', 'verify', 'bench', 'doctor'):\n"
            "    main([c, '--help'])\n"
            "main(['--help'])\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "KERAS_EDGE_RUNTIME": ""})
    assert r.returncode == 0, r.stderr[-2000:]


def test_doctor_reports_tensorflow_on_a_workstation(capsys):
    code, out, _ = cli(capsys, "doctor", "--json")
    d = json.loads(out)
    import tensorflow as tf

    assert code == 0 and d["tensorflow"]["version"] == tf.__version__
    assert isinstance(d["tensorflow"]["gpus"], list)
