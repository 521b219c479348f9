"""Class names are checked, never assumed; a library's unregistered classes load with ``--import``.

- A six-class classifier trained here on scikit-image photographs with its outputs in a non-sorted order
  (astronaut, chelsea, coffee, rocket, immunohistochemistry, hubble_deep_field): ``--labels`` maps the class
  folders to outputs by name, and the accuracy convert reports is the one the board's runner gets scored by folder
  name; without ``--labels`` convert stops with one line instead of scoring against the wrong classes.
- A model whose layer class is defined, unregistered, in the user's own ``.py`` file loads with ``--import FILE``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import zoo
from keras_edge.cli import main


def _cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(list(map(str, args)))
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """A classifier whose outputs are astronaut, chelsea, coffee, rocket, immunohistochemistry, hubble_deep_field."""
    root = tmp_path_factory.mktemp("six")
    zoo.class_crops(root / "train", 60, 32, seed=0)
    zoo.class_crops(root / "eval", 40, 32, seed=1)
    model = zoo.train_photo_classifier(root / "train", 32)
    model.save(root / "six.keras")
    (root / "labels.txt").write_text("\n".join(zoo.PHOTOS) + "\n")
    return root


def _runner_accuracy(bundle: Path, evald: Path, names: tuple[str, ...]) -> float:
    """Top-1 of the bundle's runner, scored by folder name against the label it prints."""
    from keras_edge.api import open_bundle

    hits = total = 0
    with open_bundle(str(bundle)) as r:
        for folder in names:
            for p in sorted((evald / folder).glob("*.png")):
                hits += r.run(str(p)).top[0].label == folder
                total += 1
    return hits / total


def test_class_folders_map_to_outputs_by_name(six, tmp_path, capsys):
    base = ["convert", six / "six.keras", "--calib", six / "train", "--eval", six / "eval", "--preprocess", "unit",
            "--variants", "fp32"]
    rc, _, err = _cli(capsys, *base, "-o", tmp_path / "unlabelled")
    assert rc == 2 and err.count("error:") == 1 and "Traceback" not in err, err
    assert "--labels is needed" in err and ", ".join(zoo.PHOTOS) in err and not (tmp_path / "unlabelled").exists()

    rc, stdout, err = _cli(capsys, *base, "-o", tmp_path / "b", "--labels", six / "labels.txt")
    assert rc == 0, err
    acc = json.loads((tmp_path / "b" / "report.json").read_text())["keras"]["accuracy"]
    assert acc > 0.8
    # the accuracy convert reports is the one the board's runner gets, scored by folder name
    assert abs(_runner_accuracy(tmp_path / "b", six / "eval", zoo.PHOTOS) - acc) < 1e-9

    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(n if n != "rocket" else "spaceship" for n in zoo.PHOTOS) + "\n")
    rc, _, err = _cli(capsys, *base, "-o", tmp_path / "c", "--labels", bad)
    assert rc == 2 and "no line for the class folder 'rocket'" in err and err.count("error:") == 1 and "Traceback" not in err, err


def test_sorted_folders_that_are_the_model_order_pass_without_labels():
    """The check refuses only a clearly better permutation: folders whose sorted order is the output order pass."""
    from keras_edge.host.convert.classes import check_folder_order

    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 6, 300))   # a 70%-right model, right order
    check_folder_order(y, pred, tuple("abcdef"), labels_given=False)
    with pytest.raises(Exception, match="is needed"):
        check_folder_order(y, (pred + 1) % 6, tuple("abcdef"), labels_given=False)
    # a model that answers one class for everything says nothing about the order, however unequal the folders
    y = np.repeat(np.arange(6), [120, 10, 10, 10, 10, 10])
    check_folder_order(y, np.full(len(y), 3), tuple("abcdef"), labels_given=False)


LAYER_PY = textwrap.dedent("""
    import keras


    class Doubler(keras.layers.Layer):
        \"\"\"Not registered with Keras: a library class the user cannot decorate.\"\"\"

        def call(self, x):
            return x * 2.0
""")


def test_import_a_py_file_whose_layer_class_is_not_registered(tmp_path, capsys):
    import importlib.util
    import sys

    import keras

    from keras_edge.demo import digits_images

    (tmp_path / "mylayers.py").write_text(LAYER_PY)
    spec = importlib.util.spec_from_file_location("mylayers", tmp_path / "mylayers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mylayers"] = mod
    spec.loader.exec_module(mod)
    imgs, labels = digits_images()
    x = (imgs[:300, :, :, None].astype(np.float32) / 255.0)
    keras.utils.set_random_seed(0)
    inp = keras.Input(x.shape[1:])
    h = mod.Doubler()(keras.layers.Conv2D(8, 3, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h)))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, labels[:300], epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    del sys.modules["mylayers"]
    data = zoo.write_images(tmp_path / "calib", {"": [np.repeat((im * 255).astype(np.uint8), 3, -1) for im in x[:40]]})
    args = ["convert", tmp_path / "m.keras", "-o", tmp_path / "b", "--calib", data, "--preprocess", "unit",
            "--variants", "fp32"]
    rc, _, err = _cli(capsys, *args)
    assert rc == 2 and "uses the custom class Doubler" in err and err.count("error:") == 1 and "Traceback" not in err, err
    rc, _, err = _cli(capsys, *args, "--import", tmp_path / "mylayers.py")
    assert rc == 0, err
    res = json.loads((tmp_path / "b" / "report.json").read_text())
    assert res["variants"][0]["status"] == "ok"
