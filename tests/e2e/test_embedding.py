"""Embeddings end to end: the digits CNN's pooled features as an embedding model, converted with reference
embeddings (one per class, computed from training images), run on held-out images (best cosine matches),
verified; a bare .tflite with --task embedding --references; and the bad inputs of the flags."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B
from keras_edge.device.inputs.images import load
from keras_edge.device.inputs.preprocess import preprocess


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(code: int, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code != 0 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def embedder(digits_demo, tmp_path_factory):
    """The trained digits CNN cut before its classifier: a 128-d embedding of each image."""
    import keras

    work = tmp_path_factory.mktemp("embedding")
    model = keras.models.load_model(digits_demo.model)
    emb = keras.Model(model.inputs, model.layers[-1].input, name="digits_embedding")
    path = work / "embedding.keras"
    emb.save(path)
    return emb, path, work


@pytest.fixture(scope="module")
def references(embedder, digits_demo):
    """Per-class mean embeddings of 15 training images each, through the bundle's own preprocessing."""
    emb, path, work = embedder
    bundle = work / "probe"
    assert main(["convert", str(path), "--calib", str(digits_demo.train), "--task", "embedding",
                 "--variants", "fp32", "-o", str(bundle)]) == 0
    spec = B.read_manifest(bundle).preprocess
    refs = {}
    for cls_dir in sorted(Path(digits_demo.train).iterdir()):
        xs = np.stack([preprocess(load(p), spec) for p in sorted(cls_dir.iterdir())[:15]])
        refs[cls_dir.name] = np.asarray(emb.predict(xs, verbose=0)).mean(0)
    out = work / "refs.npz"
    np.savez(out, **refs)
    return out


def test_embedding_bundle_matches_held_out_digits_to_their_class(capsys, embedder, references, digits_demo):
    _, path, work = embedder
    bundle = work / "digits-emb"
    code, _, err = cli(capsys, "convert", path, "--calib", digits_demo.train, "--task", "embedding",
                       "--references", references, "--variants", "fp32,int8", "-o", bundle)
    assert code == 0, err
    m = B.read_manifest(bundle)
    assert m.task is B.Task.EMBEDDING and m.postprocess.references == "embeddings.npz"
    assert (bundle / "embeddings.npz").is_file() and (bundle / B.REFERENCE).is_file()
    images = [p for d in sorted(Path(digits_demo.eval).iterdir()) for p in sorted(d.iterdir())[:3]]
    code, out, err = cli(capsys, "run", bundle, *images, "--json")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == len(images)
    right = 0
    for img, row in zip(images, rows):
        matches = row["task"]["matches"]
        assert len(matches) >= 3 and matches[0]["similarity"] >= matches[1]["similarity"]
        right += matches[0]["name"] == img.parent.name
    assert right / len(images) >= 0.8, (right, len(images))
    code, out, err = cli(capsys, "run", bundle, images[0])
    assert code == 0 and f"{images[0].parent.name} 0." in out, out   # the best match, named, with its cosine
    code, out, err = cli(capsys, "verify", bundle)
    assert code == 0, out + err


def test_bare_tflite_embedding_with_references(capsys, embedder, references, digits_demo):
    _, _, work = embedder
    bare = work / "digits-emb" / "fp32.tflite"
    image = sorted((Path(digits_demo.eval) / "7").iterdir())[0]
    code, out, err = cli(capsys, "run", bare, image, "--json")
    assert code == 0, err
    assert "matches" not in json.loads(out)["task"] if "task" in json.loads(out) else True   # raw: not guessed
    code, out, err = cli(capsys, "run", bare, image, "--json", "--preprocess", "raw", "--task", "embedding",
                         "--references", references)
    assert code == 0, err
    assert json.loads(out)["task"]["matches"][0]["name"] == "7"


def test_reference_flags_bad_inputs(capsys, embedder, references, digits_demo, tmp_path):
    _, path, work = embedder
    line = one_error_line(*cli(capsys, "convert", path, "--calib", digits_demo.train, "--task", "detection",
                               "--head", "yolo", "--references", references, "-o", tmp_path / "a")[:3:2])
    assert "--references" in line
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, a=np.ones(5, np.float32))
    line = one_error_line(*cli(capsys, "convert", path, "--calib", digits_demo.train, "--task", "embedding",
                               "--references", wrong, "-o", tmp_path / "b")[:3:2])
    assert "5" in line and "128" in line, line
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    bare = work / "digits-emb" / "fp32.tflite"
    line = one_error_line(*cli(capsys, "run", bare, bare, "--references", references)[:3:2])
    assert "--references" in line and "embedding" in line
