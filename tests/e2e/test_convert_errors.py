"""Bad input to `keras-edge convert` (issue 2), through the real CLI entry point.

Each failure must exit 2 with one line that starts with ``error: `` and says what to do, and leave
nothing half-written: no bundle at ``-o`` and a previous bundle there untouched. Recoverable input
(too few images, undecodable files, one unconvertible variant) warns and still converts, and the
converted variants really run in LiteRT.

The models are tiny (16×16 inputs, untrained: only conversion matters), built once per module.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.cli import main
from keras_edge.device.inputs.preprocess import quantize

SIZE = 16
CLASSES = {"a": 8, "b": 8, "c": 8}


# --- models and data ---------------------------------------------------------------------------------

def _save_model(path: Path, input_shape=(SIZE, SIZE, 3), middle=None) -> Path:
    """Rescaling → Conv → [middle] → pooling → softmax over 3 classes, saved as .keras."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input(input_shape)
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    if middle is not None:
        x = middle(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    keras.Model(inp, out).save(path)
    return path


def _elementwise_layer(name: str, fn):
    """A registered custom layer (loads under safe mode, like a user's own layer) applying ``fn``."""
    import keras

    cls = type(name, (keras.layers.Layer,), {"call": lambda self, x: fn(x)})
    return keras.saving.register_keras_serializable(package="keras_edge_tests")(cls)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    import keras

    root = tmp_path_factory.mktemp("models")
    sine = _elementwise_layer("Sine", keras.ops.sin)     # TFLite SIN has a float kernel only
    erf = _elementwise_layer("Erf", keras.ops.erf)       # no TFLite builtin at all: needs Flex
    return {
        "tiny": _save_model(root / "tiny.keras"),
        "lambda": _save_model(root / "lambda.keras", middle=keras.layers.Lambda(lambda x: x * 2.0)),
        "dynamic": _save_model(root / "dynamic.keras", input_shape=(None, None, 3)),
        "sine": _save_model(root / "sine.keras", middle=sine()),
        "erf": _save_model(root / "erf.keras", middle=erf()),
    }


@pytest.fixture(scope="module")
def calib(tmp_path_factory, write_images) -> Path:
    """24 PNGs in three class folders."""
    return write_images(tmp_path_factory.mktemp("calib"), CLASSES, size=SIZE)


@pytest.fixture(scope="module")
def previous_bundle(models, calib, tmp_path_factory) -> Path:
    """A good bundle of the tiny model, converted once; tests copy it to see that failures leave it intact."""
    out = tmp_path_factory.mktemp("previous") / "bundle"
    code = main(["convert", str(models["tiny"]), "-o", str(out), "--calib", str(calib), "--variants", "fp32"])
    assert code == 0
    return out


# --- helpers -----------------------------------------------------------------------------------------

def convert(capsys, model, out, calib, *extra) -> tuple[int, str, str]:
    code = main(["convert", str(model), "-o", str(out), "--calib", str(calib), *map(str, extra)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, *fragments: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    what, _, fix = errors[0].partition("; ")
    assert fix, f"the message must say what to do: {errors[0]}"
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")], "partial directory left"


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def assert_variant_runs(bundle: Path, name: str) -> None:
    """The variant is ok in the manifest, matches its checksum, and runs a reference input in LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    manifest = B.read_manifest(bundle)
    variant = manifest.variant(name)
    assert variant.status is B.VariantStatus.OK, variant.reason
    interpreter = Interpreter(model_path=str(B.check_variant(bundle, variant)))
    interpreter.allocate_tensors()
    inp, outp = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = np.load(bundle / B.REFERENCE)["input_0"][:1]
    interpreter.set_tensor(inp["index"], quantize(x, inp["dtype"], *inp["quantization"]))
    interpreter.invoke()
    y = interpreter.get_tensor(outp["index"])
    assert y.shape == (1, len(CLASSES)) and np.all(np.isfinite(y.astype(np.float32)))


# --- failures: exit 2, one line, nothing written -----------------------------------------------------

def _corrupt_keras(models, tmp: Path) -> Path:
    path = tmp / "random.keras"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


def _truncated_keras(models, tmp: Path) -> Path:
    data = models["tiny"].read_bytes()
    path = tmp / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    return path


def _corrupt_h5(models, tmp: Path) -> Path:
    path = tmp / "random.h5"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


MODEL_FAILURES = {
    "missing-model": (lambda models, tmp: tmp / "missing.keras", ["no such model file", "pass a .keras or .h5 file"]),
    "random-bytes-keras": (_corrupt_keras, ["random.keras is not a valid .keras file", "truncated or corrupt"]),
    "truncated-keras": (_truncated_keras, ["truncated.keras is not a valid .keras file", "truncated or corrupt"]),
    "random-bytes-h5": (_corrupt_h5, ["could not be loaded", "truncated or corrupt"]),
    "lambda-under-safe-mode": (lambda models, tmp: models["lambda"], ["Lambda layer", "pass --unsafe"]),
    "unknown-input-size": (lambda models, tmp: models["dynamic"], ["input size is unknown (?, ?, 3)",
                                                                   "--input-shape is needed"]),
}


@pytest.mark.parametrize("case", MODEL_FAILURES)
def test_bad_model_fails_with_one_line_and_writes_nothing(case, models, calib, tmp_path, capsys):
    make_model, fragments = MODEL_FAILURES[case]
    out = tmp_path / "out"
    code, _, err = convert(capsys, make_model(models, tmp_path), out, calib, "--variants", "fp32")
    assert_one_line_error(code, err, *fragments)
    assert_nothing_written(out)


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "README.txt").write_text("no images here")
    return tmp / "empty"


def _only_undecodable(tmp: Path) -> Path:
    (tmp / "broken").mkdir()
    (tmp / "broken" / "zero.png").write_bytes(b"")
    (tmp / "broken" / "text.jpg").write_text("not a jpeg")
    return tmp / "broken"


CALIB_FAILURES = {
    "empty-folder": (_empty_folder, ["contains no images", "point it at a folder of images"]),
    "missing-folder": (lambda tmp: tmp / "missing", ["no such folder", "pass a folder of images"]),
    "a-file-not-a-folder": (lambda tmp: Path(__file__), ["is not a folder", "pass a folder of images"]),
    "nothing-decodable": (_only_undecodable, ["images could be decoded", "check the folder's image files"]),
}


@pytest.mark.parametrize("case", CALIB_FAILURES)
def test_bad_calibration_folder_fails_with_one_line_and_writes_nothing(case, models, tmp_path, capsys):
    make_calib, fragments = CALIB_FAILURES[case]
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["tiny"], out, make_calib(tmp_path), "--variants", "fp32")
    assert_one_line_error(code, err, *fragments)
    assert_nothing_written(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their permissions")
def test_unreadable_calibration_folder_fails_with_one_line(models, calib, tmp_path, capsys):
    locked = tmp_path / "locked"
    shutil.copytree(calib, locked)
    os.chmod(locked, 0)
    try:
        code, _, err = convert(capsys, models["tiny"], tmp_path / "out", locked, "--variants", "fp32")
    finally:
        os.chmod(locked, 0o755)
    assert_one_line_error(code, err, "permission denied", "make the folder readable")
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("case", ["truncated-keras", "lambda-under-safe-mode"])
def test_failed_reconvert_leaves_the_previous_bundle_intact(case, models, calib, previous_bundle, tmp_path, capsys):
    out = tmp_path / "bundle"
    shutil.copytree(previous_bundle, out)
    before = snapshot(out)
    make_model, fragments = MODEL_FAILURES[case]
    code, _, err = convert(capsys, make_model(models, tmp_path), out, calib, "--variants", "fp32")
    assert_one_line_error(code, err, *fragments)
    assert snapshot(out) == before
    assert_variant_runs(out, "fp32")


def test_failure_while_writing_the_bundle_leaves_the_previous_bundle_intact(models, calib, previous_bundle,
                                                                              tmp_path, capsys):
    """Every requested variant fails after the staging directory exists: it is removed, the old bundle stays."""
    out = tmp_path / "bundle"
    shutil.copytree(previous_bundle, out)
    before = snapshot(out)
    # Erf has no TFLite builtin: fp32 needs Flex and int8 leaves it in float. (SIN alone no longer fails every
    # variant: int8's integer route adds int8-mixed with SIN in float.)
    code, _, err = convert(capsys, models["erf"], out, calib, "--variants", "fp32,int8")
    assert_one_line_error(code, err, "SELECT_TF_OPS", "no Flex ops")
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "no partial or old copies left beside it"


def test_output_that_is_not_a_bundle_is_not_replaced(models, calib, tmp_path, capsys):
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.txt").write_text("precious")
    code, _, err = convert(capsys, models["tiny"], out, calib, "--variants", "fp32")
    assert_one_line_error(code, err, "not a keras-edge bundle", "choose a new output path")
    assert [p.name for p in out.iterdir()] == ["thesis.txt"]


def test_output_that_is_a_file_is_not_replaced(models, calib, tmp_path, capsys):
    out = tmp_path / "model.tflite"
    out.write_bytes(b"someone's file")
    code, _, err = convert(capsys, models["tiny"], out, calib, "--variants", "fp32")
    assert_one_line_error(code, err, "exists and is not a directory", "choose another output path")
    assert out.read_bytes() == b"someone's file"


def test_model_needing_select_tf_ops_says_the_board_has_no_flex_ops(models, calib, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["erf"], out, calib, "--variants", "fp32,int8")
    assert "fp32: VALIDATION FAILED (needs SELECT_TF_OPS (Flex) for Erf: the board's LiteRT runtime has no Flex ops" in err
    assert "int8: FAILED to convert: ops that cannot be fully integer-quantized: Erf" in err
    assert_one_line_error(code, err, "SELECT_TF_OPS", "no Flex ops", "replace those ops with TFLite builtins")
    assert_nothing_written(out)


# --- recoverable input: warn, convert, and the result runs -------------------------------------------

def test_lambda_model_converts_with_unsafe(models, calib, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = convert(capsys, models["lambda"], out, calib, "--variants", "fp32", "--unsafe")
    assert code == 0, err
    assert f"bundle written to {out}" in stdout
    assert_variant_runs(out, "fp32")


def test_unknown_input_size_converts_with_input_shape(models, calib, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["dynamic"], out, calib, "--variants", "fp32", "--input-shape", "16,16,3")
    assert code == 0, err
    manifest = B.read_manifest(out)
    assert manifest.inputs[0].shape == (1, SIZE, SIZE, 3)
    assert (manifest.preprocess.height, manifest.preprocess.width) == (SIZE, SIZE)
    assert_variant_runs(out, "fp32")


def test_input_shape_that_does_not_fit_the_model_is_refused(models, calib, tmp_path, capsys):
    code, _, err = convert(capsys, models["tiny"], tmp_path / "out", calib, "--variants", "fp32", "--input-shape", "8,8,3")
    assert_one_line_error(code, err, "does not fit the model's input", "without the batch dimension")
    assert_nothing_written(tmp_path / "out")


def test_fewer_images_than_requested_warns_and_uses_them_all(models, calib, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["tiny"], out, calib, "--variants", "fp32", "--calib-samples", "500")
    assert code == 0, err
    assert "has only 20 calibration images (asked for 500); using them all" in err
    assert B.read_manifest(out).variant("fp32").status is B.VariantStatus.OK
    assert_variant_runs(out, "fp32")


def test_undecodable_images_are_skipped_with_a_count(models, calib, tmp_path, capsys):
    mixed = tmp_path / "mixed"
    shutil.copytree(calib, mixed)
    (mixed / "a" / "zero.png").write_bytes(b"")
    (mixed / "b" / "notes.jpg").write_text("a text file named .jpg")
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["tiny"], out, mixed, "--variants", "fp32", "--calib-samples", "500")
    assert code == 0, err
    assert "note: skipped 2 image(s) that failed to decode" in err
    assert_variant_runs(out, "fp32")


def test_op_without_int8_kernel_fails_only_the_int8_variant(models, calib, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = convert(capsys, models["sine"], out, calib, "--variants", "fp32,dynamic,int8")
    assert code == 0, err
    assert "int8: FAILED to convert: ops that cannot be fully integer-quantized: SIN" in err
    int8 = B.read_manifest(out).variant("int8")
    assert int8.status is B.VariantStatus.CONVERSION_FAILED and "SIN" in int8.reason
    assert not (out / "int8.tflite").exists()
    assert_variant_runs(out, "fp32")
    assert_variant_runs(out, "dynamic")
