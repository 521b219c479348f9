"""Every kind of Keras model converts (issue 13): each end to end, convert → bundle → `run` → `verify`.

Tiny models trained here (four epochs) on scikit-learn's digits upscaled to 16×16: a Sequential
``.keras``, a Functional ``.h5`` (Keras 3's legacy format), a SavedModel from ``model.export()`` whose
Rescaling is hidden from Keras (read from the graph), a model with two inputs (an image of dynamic size
and a vector, calibrated from an ``.npz`` keyed by input name) and a model with two outputs (class
scores and a regression head, each validated on its own). Subclassed models with ``--import`` are in
test_new_user.py. Then the bad inputs of these kinds, each one ``error:`` line, no traceback, nothing
written (the checks of test_bad_input_corpus.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B

SIZE = 16
CONVERT = ["--variants", "fp32,int8", "--calib-samples", "120", "--eval-samples", "60",
           "--max-accuracy-drop", "0.5"]   # four epochs of training: the int8 improvements are not the subject here


def _features(imgs: np.ndarray) -> np.ndarray:
    """Four extra numbers per digit (ink in each quadrant), the second input of the two-input model."""
    h = SIZE // 2
    q = [imgs[:, :h, :h], imgs[:, :h, h:], imgs[:, h:, :h], imgs[:, h:, h:]]
    return np.stack([a.mean(axis=(1, 2)) / 255.0 for a in q], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def kinds(tmp_path_factory):
    """The models of every kind, trained briefly, and their data: an image folder and .npz files."""
    import keras

    from keras_edge.demo import digits_images, write_image_folder

    root = tmp_path_factory.mktemp("kinds")
    imgs, labels = digits_images(SIZE)
    order = np.random.default_rng(0).permutation(len(labels))
    imgs, labels = imgs[order], labels[order]
    train = root / "train"
    write_image_folder(train, imgs[:400], labels[:400], [str(i) for i in range(10)])
    x = imgs[..., None].astype(np.float32)
    feats = _features(imgs)
    ink = imgs.reshape(len(imgs), -1).mean(axis=1, keepdims=True).astype(np.float32) / 255.0

    def trunk(inp):
        y = keras.layers.Rescaling(1 / 255)(inp)
        y = keras.layers.Conv2D(16, 3, activation="relu")(y)
        y = keras.layers.Conv2D(16, 3, activation="relu")(y)
        return keras.layers.GlobalAveragePooling2D()(y)

    def fit(model, xs, ys):
        model.compile(keras.optimizers.Adam(0.01), ["sparse_categorical_crossentropy", "mse"][:len(model.outputs)]
                      if len(model.outputs) > 1 else "sparse_categorical_crossentropy")
        model.fit(xs, ys, epochs=4, batch_size=32, verbose=0)
        return model

    keras.utils.set_random_seed(0)
    seq = fit(keras.Sequential([keras.Input((SIZE, SIZE, 1)), keras.layers.Rescaling(1 / 255),
                                keras.layers.Conv2D(8, 3, activation="relu"), keras.layers.MaxPooling2D(),
                                keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]), x, labels)
    seq.save(root / "seq.keras")

    inp = keras.Input((SIZE, SIZE, 1), name="pixels")
    func = fit(keras.Model(inp, keras.layers.Dense(10, activation="softmax")(trunk(inp))), x, labels)
    func.save(root / "func.h5")
    func.export(str(root / "exported"), verbose=False)
    import tensorflow as tf

    tf.saved_model.save(func, str(root / "tf_saved"))

    # two inputs, the image of dynamic size; Keras order (image, extra) is not the converter's (by name)
    image, extra = keras.Input((None, None, 1), name="image"), keras.Input((4,), name="extra")
    z = keras.layers.Concatenate()([trunk(image), keras.layers.Dense(8, activation="relu")(extra)])
    two_in = fit(keras.Model([image, extra], keras.layers.Dense(10, activation="softmax")(z)), [x, feats], labels)
    two_in.save(root / "two_inputs.keras")
    np.savez(root / "two_inputs.npz", image=x[:300], extra=feats[:300], y=labels[:300])

    # two outputs: class scores and a regression head (the digit's ink)
    inp = keras.Input((SIZE, SIZE, 1), name="pixels")
    t = trunk(inp)
    scores = keras.layers.Dense(10, activation="softmax", name="scores")(t)
    ink_out = keras.layers.Dense(1, name="ink")(t)
    two_out = fit(keras.Model(inp, [scores, ink_out]), x, [labels, ink])
    two_out.save(root / "two_outputs.keras")
    two_in.export(str(root / "exported_two_inputs"), verbose=False)
    two_out.export(str(root / "exported_two_outputs"), verbose=False)

    sample = root / "sample.png"
    sample.write_bytes(next(iter(sorted(train.rglob("*.png")))).read_bytes())
    return SimpleNamespace(root=root, train=train, x=x, feats=feats, labels=labels, sample=sample)


def _convert(model, out: Path, capsys, *args: str) -> B.Manifest:
    rc = main(["convert", str(model), "-o", str(out), *CONVERT, *args])
    err = capsys.readouterr().err
    assert rc == 0, err
    return B.read_manifest(out)


def _run(bundle: Path, source: Path, capsys) -> dict:
    rc = main(["run", str(bundle), str(source), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out.splitlines()[0])


def _verify(bundle: Path, capsys) -> dict:
    rc = main(["verify", str(bundle), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.out + captured.err
    report = json.loads(captured.out)
    assert report["ok"] and {c["verdict"] for c in report["variants"]} == {"pass"}
    return report


def _ok(m: B.Manifest) -> set[str]:
    return {v.name for v in m.variants if v.status is B.VariantStatus.OK}


# --- each kind, end to end ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["seq.keras", "func.h5"])
def test_keras_and_h5_files_convert_run_and_verify(kinds, kind, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / kind, out, capsys, "--calib", str(kinds.train))
    assert _ok(m) == {"fp32", "int8"}
    assert m.source["kind"] == ("h5" if kind.endswith(".h5") else "keras")
    assert m.preprocess.preset == "raw" and "Rescaling" in m.preprocess.reason
    line = _run(out, kinds.sample, capsys)
    assert line["ok"] and len(line["top_k"]) == 5
    _verify(out, capsys)


@pytest.mark.parametrize("saved", ["exported", "tf_saved"])   # model.export(), tf.saved_model.save()
def test_savedmodel_reads_its_rescaling_from_the_graph(kinds, saved, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / saved, out, capsys, "--calib", str(kinds.train))
    assert m.source["kind"] == "savedmodel" and _ok(m) == {"fp32", "int8"}
    assert m.preprocess.preset == "raw"
    assert m.preprocess.reason.startswith("read from the SavedModel graph: x*0.00392+0")
    fp32 = m.variant("fp32").metrics
    assert fp32["agreement"] == 1.0
    assert _run(out, kinds.sample, capsys)["top_k"]
    _verify(out, capsys)


def test_two_inputs_from_an_npz_keyed_by_input_name(kinds, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / "two_inputs.keras", out, capsys, "--calib", str(kinds.root / "two_inputs.npz"),
                 "--input-shape", f"image={SIZE},{SIZE},1")
    assert [t.name for t in m.inputs] == ["image", "extra"]
    assert [t.shape for t in m.inputs] == [(1, SIZE, SIZE, 1), (1, 4)]
    assert m.input_preprocess == (None, None) and m.task is B.Task.CLASSIFICATION
    assert _ok(m) == {"fp32", "int8"}
    for v in m.usable:   # the converter sorts inputs by name (extra, image): matched by name, recorded
        assert [m.inputs[v.manifest_input(i)].name for i in range(2)] == ["extra", "image"]
        assert [t.shape for t in v.inputs] == [m.inputs[v.manifest_input(i)].shape for i in range(2)]
    assert m.variant("fp32").metrics["agreement"] == 1.0 and m.variant("int8").metrics["agreement"] >= 0.9
    with np.load(out / B.REFERENCE, allow_pickle=False) as ref:
        assert ref["input_0"].shape[1:] == (SIZE, SIZE, 1) and ref["input_1"].shape[1:] == (4,)
    by_name = tmp_path / "one.npz"
    np.savez(by_name, extra=kinds.feats[:1], image=kinds.x[:1])
    by_index = tmp_path / "two.npz"
    np.savez(by_index, input_0=kinds.x[:2], input_1=kinds.feats[:2])
    a, b = _run(out, by_name, capsys), _run(out, by_index, capsys)
    assert a["top_k"][0]["index"] == b["top_k"][0]["index"]   # the same sample, fed by name or by Keras index
    _verify(out, capsys)
    rc = main(["run", str(out), str(kinds.sample)])   # an image cannot feed both inputs: its line says why
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert rc == 2 and "Traceback" not in text
    (line,) = [ln for ln in text.splitlines() if "images feed only one" in ln]
    assert "takes 2 inputs (image, extra) and images feed only one" in line and "keyed by input name" in line


def test_python_api_takes_a_two_input_model_object_with_named_shapes(kinds, tmp_path):
    import keras

    import keras_edge as ke
    from keras_edge.host.preprocessing import PreprocessOptions

    model = keras.models.load_model(kinds.root / "two_inputs.keras")
    cfg = ke.ConvertConfig(model=model, out=tmp_path / "bundle", calib=kinds.root / "two_inputs.npz",
                           variants=("fp32",), calib_samples=60, eval_samples=30,
                           preprocess=PreprocessOptions(input_shapes={"image": (SIZE, SIZE, 1)}))
    result = ke.convert(cfg)
    assert [t.name for t in result.manifest.inputs] == ["image", "extra"]
    assert result.manifest.variant("fp32").metrics["agreement"] == 1.0
    from keras_edge.device.health.verify import verify_bundle

    assert verify_bundle(tmp_path / "bundle").ok


def test_savedmodel_with_two_inputs_through_its_signature(kinds, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / "exported_two_inputs", out, capsys, "--calib", str(kinds.root / "two_inputs.npz"),
                 "--input-shape", f"image={SIZE},{SIZE},1")
    assert sorted(t.name for t in m.inputs) == ["extra", "image"] and _ok(m) == {"fp32", "int8"}
    assert m.variant("fp32").metrics["agreement"] == 1.0
    sample = tmp_path / "one.npz"
    np.savez(sample, image=kinds.x[:1], extra=kinds.feats[:1])
    assert _run(out, sample, capsys)["top_k"]
    _verify(out, capsys)


def test_savedmodel_with_two_outputs_names_them_after_its_signature(kinds, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / "exported_two_outputs", out, capsys, "--calib", str(kinds.train))
    assert [t.name for t in m.outputs] == ["output_0", "output_1"] and _ok(m) == {"fp32", "int8"}
    assert m.preprocess.reason.startswith("read from the SavedModel graph: x*0.00392+0")
    assert [p["name"] for p in m.variant("int8").metrics["per_output"]] == ["output_0", "output_1"]
    assert max(p["max_abs_err"] for p in m.variant("fp32").metrics["per_output"]) < 1e-4
    _verify(out, capsys)


def test_two_outputs_each_named_and_validated_on_its_own(kinds, tmp_path, capsys):
    out = tmp_path / "bundle"
    m = _convert(kinds.root / "two_outputs.keras", out, capsys, "--calib", str(kinds.train))
    assert [t.name for t in m.outputs] == ["scores", "ink"]
    assert _ok(m) == {"fp32", "int8"} and m.task is B.Task.OTHER
    for v in m.usable:
        per = v.metrics["per_output"]
        assert [p["name"] for p in per] == ["scores", "ink"]
        assert all({"max_abs_err", "cosine", "snr_db"} <= set(p) for p in per)
        assert len(v.tolerance.output_max_abs) == 2
        shapes = {m.outputs[v.manifest_output(i)].name: t.shape[1:] for i, t in enumerate(v.outputs)}
        assert shapes == {"scores": (10,), "ink": (1,)}
    assert max(p["max_abs_err"] for p in m.variant("fp32").metrics["per_output"]) < 1e-4
    line = _run(out, kinds.sample, capsys)
    assert sorted(o["name"] for o in line["outputs"]) == ["ink", "scores"]
    report = _verify(out, capsys)
    assert all([o["name"] for o in c["outputs"]] == ["scores", "ink"] for c in report["variants"])


def test_verify_names_the_output_that_failed(kinds, tmp_path, capsys):
    out = tmp_path / "bundle"
    _convert(kinds.root / "two_outputs.keras", out, capsys, "--calib", str(kinds.train), "--variants", "fp32")
    ref = dict(np.load(out / B.REFERENCE, allow_pickle=False))
    ref["output_1"] = ref["output_1"] + 0.5   # the regression head's reference moves; the scores stay
    np.savez(out / B.REFERENCE, **ref)
    rc = main(["verify", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1
    (check,) = report["variants"]
    assert check["verdict"] == "fail" and "output ink: max abs error" in check["message"]
    assert "scores" not in check["message"]


# --- bad inputs of these kinds: one error line, no traceback, nothing written --------------------------

@dataclass(frozen=True)
class Case:
    id: str
    args: Callable   # (kinds, tmp_path) -> argv
    says: tuple[str, ...]


def _npz(tmp_path: Path, **arrays) -> str:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return str(path)


def _no_signature(tmp_path: Path) -> str:
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "nosig"))
    return str(tmp_path / "nosig")


def _no_rescaling(tmp_path: Path) -> str:
    """A SavedModel whose graph starts with a convolution: its normalisation cannot be read."""
    import keras

    inp = keras.Input((SIZE, SIZE, 1))
    model = keras.Model(inp, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))))
    model.export(str(tmp_path / "plain"), verbose=False)
    return str(tmp_path / "plain")


BAD = [
    Case("npz-missing-an-input", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib",
                                                _npz(t, image=k.x[:20]), "--input-shape", f"image={SIZE},{SIZE},1"],
         ("has no array for input 'extra'", "its keys: image", "extra")),
    Case("npz-wrong-shape", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib",
                                           _npz(t, image=k.x[:20], extra=k.feats[:20, :3]),
                                           "--input-shape", f"image={SIZE},{SIZE},1"],
         ("array 'extra' has shape (20, 3)", "input 'extra' takes (N, 4)")),
    Case("images-for-two-inputs", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib", str(k.train),
                                                 "--input-shape", f"image={SIZE},{SIZE},1"],
         ("holds images, but the model has 2 inputs (image, extra)", ".npz")),
    Case("input-shape-does-not-fit", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib",
                                                    str(k.root / "two_inputs.npz"), "--input-shape", "image=16,16,3"],
         ("--input-shape 16,16,3 does not fit input image (?, ?, 1)",)),
    Case("input-shape-unnamed-for-two-inputs", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib",
                                                              str(k.root / "two_inputs.npz"), "--input-shape", "16,16,1"],
         ("--input-shape gives one shape but the model has 2 inputs (image, extra)",)),
    Case("input-shape-missing", lambda k, t: [str(k.root / "two_inputs.keras"), "--calib", str(k.root / "two_inputs.npz")],
         ("--input-shape is needed: the size of input image is unknown", "image=H,W,C")),
    Case("savedmodel-rescaling-unreadable", lambda k, t: [_no_rescaling(t), "--calib", str(k.train)],
         ("--preprocess is needed: no rescaling of the input could be read from the SavedModel graph", "state it")),
    Case("savedmodel-without-serving-signature", lambda k, t: [_no_signature(t), "--calib", str(k.train)],
         ("has no 'serving_default' signature", "model.export")),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_model_kind_inputs_give_one_error_line(kinds, case, tmp_path, capsys):
    out = tmp_path / "out" / "bundle"
    argv = ["convert", *case.args(kinds, tmp_path), "-o", str(out), "--variants", "fp32"]
    rc = main(argv)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert rc == 2, text
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and captured.err.rstrip().splitlines()[-1] == errors[0], captured.err
    assert "Traceback" not in text
    for part in case.says:
        assert part in errors[0], errors[0]
    assert not out.exists() and not any((tmp_path / "out").iterdir() if (tmp_path / "out").exists() else [])
