"""A two-output SSD-style detection bundle (deltas + class scores, anchors in the bundle), fp32 and int8:
``run`` decodes it through the manifest's postprocess spec whatever order the converter gave the outputs,
and ``verify`` checks both outputs against reference.npz, naming the output that drifts.

The bundle is assembled here with the device library's own manifest types (convert --task belongs to the
host side); the model is a Keras grid "detector" that sees colour: on scikit-image's grey camera photo a
red block is class 0 and a blue block class 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B
from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess
from keras_edge.device.contract.tasks import PostprocessSpec, Task

G, S, C = 4, 64, 2
H, W = 300, 500
RED = (250, 75, 375, 150)
BLUE = (0, 225, 125, 300)


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    img = cv2.cvtColor(cv2.resize(skdata.camera(), (W, H)), cv2.COLOR_GRAY2BGR)
    img[RED[1]:RED[3], RED[0]:RED[2]] = (0, 0, 255)
    img[BLUE[1]:BLUE[3], BLUE[0]:BLUE[2]] = (255, 0, 0)
    path = tmp_path_factory.mktemp("scene") / "scene.jpg"
    assert cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, scene) -> Path:
    import keras
    import tensorflow as tf
    from keras import ops

    from keras_edge.device.engine.core import EngineOptions, load

    class CellScores(keras.layers.Layer):
        def call(self, x):
            cells = ops.average_pool(x, S // G, S // G, padding="valid")
            red = cells[..., 0] - 0.5 * (cells[..., 1] + cells[..., 2])
            blue = cells[..., 2] - 0.5 * (cells[..., 0] + cells[..., 1])
            background = 0.1 + 0.0 * red
            return ops.clip(ops.reshape(ops.stack([background, red, blue], -1), (-1, G * G, C + 1)), 0.0, 1.0)

    inp = keras.Input((S, S, 3), batch_size=1)
    conv = keras.layers.Conv2D(4, S // G, strides=S // G, name="box_conv")
    deltas = keras.layers.Reshape((G * G, 4), name="deltas")(conv(inp))
    model = keras.Model(inp, [deltas, CellScores(name="scores")(inp)])
    w = np.zeros((S // G, S // G, 3, 4), np.float32)
    w[..., 0, 2] = 1e-4                       # a hair of box size from the red channel: deltas are not all zero
    conv.set_weights([w, np.zeros(4, np.float32)])

    spec = PreprocessSpec.from_preset("unit", S, S)
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    x = np.stack([preprocess(p[:, :, ::-1].copy(), PreprocessSpec.from_preset("unit", S, S, color="rgb"))
                  for p in photos] + [preprocess(cv2.imread(str(scene)), spec)]).astype(np.float32)
    want = [np.asarray(o) for o in model.predict(x, verbose=0)]

    root = tmp_path_factory.mktemp("bundle") / "grid"
    root.mkdir()
    fp32 = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    c8 = tf.lite.TFLiteConverter.from_keras_model(model)
    c8.optimizations = [tf.lite.Optimize.DEFAULT]
    c8.representative_dataset = lambda: ([x[i:i + 1]] for i in range(len(x)))
    c8.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c8.inference_input_type = c8.inference_output_type = tf.int8
    variants = []
    for name, blob in (("fp32", fp32), ("int8", c8.convert())):
        (root / f"{name}.tflite").write_bytes(blob)
        eng = load(root / f"{name}.tflite", EngineOptions(threads=1))
        variants.append(B.Variant(name=name, mode=name, status=B.VariantStatus.OK, file=f"{name}.tflite",
                                  sha256=B.sha256_file(root / f"{name}.tflite"), bytes=len(blob),
                                  inputs=tuple(eng.inputs), outputs=tuple(eng.outputs),
                                  tolerance=B.Tolerance(max_abs=1e-4 if name == "fp32" else 0.05)))
    cy, cx = np.meshgrid((np.arange(G) + 0.5) / G, (np.arange(G) + 0.5) / G, indexing="ij")
    np.save(root / "anchors.npy", np.stack([cy.ravel(), cx.ravel(), np.full(G * G, 1 / G), np.full(G * G, 1 / G)], 1))
    np.savez(root / "reference.npz", input_0=x, output_0=want[0], output_1=want[1])
    (root / "labels.txt").write_text("red\nblue\n")
    post = PostprocessSpec(Task.DETECTION, {"deltas": 0, "scores": 1}, num_classes=C, head="ssd",
                           anchors="anchors.npy", background=0, score_threshold=0.3)
    m = B.Manifest(name="grid", preprocess=spec, inputs=(B.TensorSpec("input", (1, S, S, 3), "float32"),),
                   outputs=(B.TensorSpec("deltas", (1, G * G, 4), "float32"),
                            B.TensorSpec("scores", (1, G * G, C + 1), "float32")),
                   variants=tuple(variants), task=Task.DETECTION, labels="labels.txt", default="fp32",
                   reference="reference.npz", postprocess=post)
    B.write_manifest(root, m)
    return root


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_detection_bundle_runs_through_its_spec(capsys, bundle, scene, variant):
    code, out, err = cli(capsys, "run", bundle, scene, "--variant", variant, "--json")
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    dets = row["task"]["detections"]
    assert [(d["class_id"], d["label"]) for d in dets] == [(0, "red"), (1, "blue")], dets
    for d, want in zip(dets, (RED, BLUE)):
        assert np.abs(np.array(d["box"]) - np.array(want)).max() <= 3.0, (d, want)
    code, out, err = cli(capsys, "run", bundle, scene, "--variant", variant, "--max-detections", "1")
    assert code == 0 and ": 1 object: " in out, out                 # a bundle's thresholds may be overridden


def test_bundle_spec_cannot_be_overridden(capsys, bundle, scene):
    code, out, err = cli(capsys, "run", bundle, scene, "--task", "detection", "--head", "yolo")
    assert code != 0 and err.strip().splitlines()[-1].startswith("error: --task cannot change what bundle")
    # a describing flag alone (no --task) gets the same answer, not "add --task detection" (which would not help)
    code, out, err = cli(capsys, "run", bundle, scene, "--head", "ssd")
    assert code != 0 and err.strip().splitlines()[-1].startswith("error: --head cannot change what bundle"), err


def test_verify_multi_output_detection_bundle(capsys, bundle, tmp_path):
    code, out, err = cli(capsys, "verify", bundle)
    assert code == 0, out + err
    # a reference whose second output ("scores") drifted: the failure names it
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(bundle, broken)
    with np.load(broken / "reference.npz", allow_pickle=False) as z:
        ref = {k: z[k] for k in z.files}
    ref["output_1"] = ref["output_1"] + 0.2
    np.savez(broken / "reference.npz", **ref)
    code, out, err = cli(capsys, "verify", broken, "--variant", "fp32")
    assert code != 0
    assert "output scores: max abs error 0.2" in out + err, out + err
