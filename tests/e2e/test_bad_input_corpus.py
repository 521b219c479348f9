"""The bad-input corpus: every command, fed what users get wrong, through the real CLI entry point.

One table, one check. For every case:

1. the exit code is the expected non-zero one (2 for user errors; ``verify`` answers 1 when a check fails);
2. stderr has exactly one line starting with ``error: ``, it is the last line, and it says what is wrong;
3. no ``Traceback`` anywhere in the output;
4. nothing half-written: the output path given does not exist afterwards, and no ``.NAME.*`` partial or
   temporary sibling is left beside it;
5. an output that existed before the command (a previous bundle, model or results file) is unchanged,
   file by file.

Most cases fail before TensorFlow loads a model; a dozen go past model loading (label counts, empty
calibration data, shapes that do not fit, preprocessing that does not fit the model, subclassed models,
bad imports). A few run in a fresh ``python -m keras_edge`` process, as a user would. The models are
tiny and untrained (only the error path matters), built once for the module; the bundle is the tiny
model converted to fp32 and int8 once.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest

from keras_edge.cli import main

SIZE = 16
CLASSES = {"a": 6, "b": 6, "c": 6}
UNREACHABLE = "127.0.0.1:1"   # nothing listens on port 1: no case here ever gets as far as connecting


# --- module fixtures: tiny models, images, one good bundle ------------------------------------------

def _functional(path: Path, channels: int = 3, classes: int = 3, rescaling: bool = True,
                shape: tuple = (SIZE, SIZE)) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((*shape, channels))
    x = keras.layers.Rescaling(1 / 255)(inp) if rescaling else inp
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(x)).save(path)
    return path


def _subclassed(path: Path) -> Path:
    """A subclassed model whose class lives in the user's own module (`user_models`), not registered here."""
    import keras

    class TinyNet(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = keras.layers.Conv2D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.head = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.head(self.pool(self.conv(x)))

    TinyNet.__module__ = "user_models"
    TinyNet.__qualname__ = "TinyNet"
    model = TinyNet()
    model(np.zeros((1, SIZE, SIZE, 3), np.float32))
    model.save(path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, write_images) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("corpus")
    models = root / "models"
    models.mkdir()
    calib = write_images(root / "calib", CLASSES, size=SIZE)
    w = SimpleNamespace(
        root=root, calib=calib, image=next((calib / "a").glob("*.png")),
        rgb=_functional(models / "rgb.keras"),
        gray10=_functional(models / "gray10.keras", channels=1, classes=10),
        raw=_functional(models / "raw.keras", rescaling=False),
        subclassed=_subclassed(models / "subclassed.keras"),
        bundle=root / "bundle",
    )
    code = main(["convert", str(w.rgb), "-o", str(w.bundle), "--calib", str(calib), "--variants", "fp32,int8",
                 "--name", "tiny"])
    assert code == 0
    w.tflite = w.bundle / "fp32.tflite"
    return w


# --- the table -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    argv: Callable[[SimpleNamespace], list]   # env → argv; may prepare files (and a previous output) in env.tmp
    expect: str                              # a fragment of the error line
    code: int = 2
    out: str | None = None                   # the output path, relative to env.tmp: never half-written
    fresh_process: bool = False              # run as `python -m keras_edge` in a new process
    env: tuple[tuple[str, str], ...] = ()    # environment for the case (a lowered limit, say)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def folder(path: Path, **files: bytes | str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        write(path / name.replace("__", "."), data)
    return path


def busy_port(e) -> int:
    """A port of 127.0.0.1 that a socket of this test holds (kept open on ``e`` for the case's duration)."""
    import socket

    e.held = socket.socket()
    e.held.bind(("127.0.0.1", 0))
    e.held.listen()
    return e.held.getsockname()[1]


def copy_bundle(e, name: str = "bundle") -> Path:
    return shutil.copytree(e.w.bundle, e.tmp / name)


def tampered_bundle(e, name: str = "bundle") -> Path:
    b = copy_bundle(e, name)
    data = bytearray((b / "int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / "int8.tflite").write_bytes(bytes(data))
    return b


def damaged(e, name: str, data: bytes | str | None = None) -> Path:
    """A copy of the good bundle at env.out with one file removed (``data`` None) or overwritten."""
    b = copy_bundle(e)
    if data is None:
        (b / name).unlink()
    else:
        write(b / name, data)
    return b


def then(prepared: object, argv: list) -> list:
    """``argv``, once ``prepared`` (a previous output the failure must leave intact) has been made."""
    return argv


def manifest_edit(e, edit: Callable[[dict], None]) -> Path:
    b = copy_bundle(e)
    m = json.loads((b / "manifest.json").read_text())
    edit(m)
    (b / "manifest.json").write_text(json.dumps(m))
    return b


def convert(e, model: Path | None = None, *extra, calib: Path | None = None) -> list:
    return ["convert", model or e.w.rgb, "-o", e.out, "--calib", calib or e.w.calib, "--variants", "fp32", *extra]


def prune(e, *extra, model: Path | None = None) -> list:
    return ["prune", model or e.w.gray10, "-o", e.out, "--method", "magnitude", "--sparsity", "0.5", *extra]


def distill(e, *extra) -> list:
    return ["distill", "--teacher", e.w.gray10, "--student", e.w.gray10, "-o", e.out, *extra]


def previous_model(e) -> Path:
    return write(e.out, b"the model a previous prune wrote")


def previous_results(e) -> Path:
    return write(e.out, '{"previous": "results"}\n')


def hosts_yml(e) -> Path:
    """An Ansible inventory of one board nobody listens for (the cases fail before contacting it)."""
    return write(e.tmp / "hosts.yml", "all:\n  children:\n    pis:\n      hosts:\n        board1:\n"
                                      "          ansible_host: 127.0.0.1\n          ansible_port: 1\n")


def empty_dir(e, name: str = "empty") -> Path:
    return folder(e.tmp / name, **{"notes.txt": "no images here"})


def ssh(*extra) -> list:
    return ["--connect-timeout", "1", *extra]


# --- hostile inputs (issue 22): builders -------------------------------------------------------------------

def nested_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def fifo(e, name: str = "x.png") -> Path:
    path = e.tmp / name
    os.mkfifo(path)
    return path


def dev_zero(e, name: str = "z.png") -> Path:
    (e.tmp / name).symlink_to("/dev/zero")
    return e.tmp / name


def jpeg_claiming(e, width: int, height: int, name: str = "bomb.jpg") -> Path:
    """A few bytes of JPEG whose frame header claims width x height pixels."""
    import struct

    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return write(e.tmp / name, b"\xff\xd8" + sof + b"\xff\xd9")


def manifest_raw(e, edit: Callable[[dict], object]) -> Path:
    """The good bundle with its manifest replaced by ``edit(manifest)`` (any JSON value) or text."""
    b = copy_bundle(e)
    m = json.loads((b / "manifest.json").read_text())
    new = edit(m)
    (b / "manifest.json").write_text(new if isinstance(new, str) else json.dumps(m if new is None else new))
    return b


def with_labels(e, data: bytes) -> Path:
    b = manifest_raw(e, lambda m: m.update(labels="labels.txt"))
    (b / "labels.txt").write_bytes(data)
    return b


def tflite_with_bad_name(e) -> Path:
    """The tiny model with one byte of an output tensor's name made 0xff (not UTF-8); the flatbuffer stays valid."""
    data = bytearray(e.w.tflite.read_bytes())
    at = data.find(b"StatefulPartitionedCall")
    assert at > 0
    data[at + 3] = 0xFF
    return write(e.tmp / "bad-name.tflite", bytes(data))


def avi_nested(e, depth: int) -> Path:
    """An MJPEG AVI whose one frame sits ``depth`` LIST 'movi' chunks deep."""
    import struct

    import cv2

    def chunk(fourcc: bytes, data: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    ok, jpg = cv2.imencode(".jpg", np.zeros((SIZE, SIZE, 3), np.uint8))
    strh = b"vids" + b"MJPG" + bytes(12) + struct.pack("<II", 1, 10) + bytes(28)
    strf = struct.pack("<IiiHH", 40, SIZE, SIZE, 1, 24) + b"MJPG" + bytes(20)
    hdrl = chunk(b"LIST", b"hdrl" + chunk(b"avih", bytes(56)) + chunk(b"LIST", b"strl" + chunk(b"strh", strh)
                                                                       + chunk(b"strf", strf)))
    movi = chunk(b"00dc", jpg.tobytes())
    for _ in range(depth):
        movi = chunk(b"LIST", b"movi" + movi)
    return write(e.tmp / "deep.avi", chunk(b"RIFF", b"AVI " + hdrl + movi))


def report_edit(e, edit: Callable[[dict], object]) -> Path:
    b = copy_bundle(e)
    r = json.loads((b / "report.json").read_text())
    new = edit(r)
    (b / "report.json").write_text(new if isinstance(new, str) else json.dumps(r))
    return b


def board_run_fast(r: dict) -> None:
    """A board run whose bench JSON says "median_ms": "fast" (as a board may reply)."""
    r["boards"] = {"pi@board": {"fingerprint": "pi", "host": "board", "version": "0" * 12, "measured": "",
                                "board": {}, "bench": {"environment": {}, "results": [
                                    {"variant": "fp32", "threads": 1, "median_ms": "fast"}]}}}


def reference_bomb(e) -> Path:
    """reference.npz whose arrays inflate far beyond what it weighs (zeros compress ~1000:1)."""
    b = copy_bundle(e)
    n = len(json.loads((b / "manifest.json").read_text())["outputs"])
    np.savez_compressed(b / "reference.npz", **{"input_0": np.zeros((64, SIZE, SIZE, 3), np.float32),
                                               **{f"output_{i}": np.zeros((64, 100_000), np.float32) for i in range(n)}})
    return b


def variants_edit(e, edit: Callable[[dict], None]) -> Path:
    return manifest_raw(e, lambda m: edit(m["variants"][0]))


def default_edit(e, edit: Callable[[dict], None]) -> Path:
    """Edit the variant `run` uses (the default: the fastest within budget, so not always the first)."""
    return manifest_raw(e, lambda m: edit(next(v for v in m["variants"] if v["name"] == m["default"])))


CASES = [
    # --- convert: before any model is loaded
    Case("convert-missing-model", lambda e: convert(e, e.tmp / "nope.keras"), "nope.keras: no such model file", out="bundle"),
    Case("convert-not-a-model-file", lambda e: convert(e, write(e.tmp / "model.txt", "hi")), "is not a Keras model file",
         out="bundle"),
    Case("convert-empty-model-file", lambda e: convert(e, write(e.tmp / "m.keras", b"")), "is empty (0 bytes)", out="bundle"),
    Case("convert-random-bytes-model", lambda e: convert(e, write(e.tmp / "m.keras", os.urandom(512))),
         "is not a valid .keras file", out="bundle"),
    Case("convert-unknown-variant", lambda e: convert(e, None, "--variants", "fp32,fp64"), "unknown variant(s) fp64",
         out="bundle"),
    Case("convert-no-variant", lambda e: convert(e, None, "--variants", ","), "unknown variant(s) (none)", out="bundle"),
    Case("convert-threads-abc", lambda e: convert(e, None, "--threads", "abc"),
         "'abc' is not a list of whole numbers; write it like 4", out="bundle"),
    Case("convert-threads-0", lambda e: convert(e, None, "--threads", "0"), "every value must be a positive whole number",
         out="bundle"),
    Case("convert-threads-list", lambda e: convert(e, None, "--threads", "1,2"), "'1,2' gives 2 thread counts", out="bundle"),
    Case("convert-calib-samples-0", lambda e: convert(e, None, "--calib-samples", "0"), "--calib-samples", out="bundle"),
    Case("convert-eval-samples-negative", lambda e: convert(e, None, "--eval-samples", "-3"), "--eval-samples", out="bundle"),
    Case("convert-accuracy-drop-2", lambda e: convert(e, None, "--max-accuracy-drop", "2"), "--max-accuracy-drop 2.0 is outside",
         out="bundle"),
    Case("convert-prune-typo", lambda e: convert(e, None, "--prune", "chanels:0.5"), "'chanels:0.5' is not METHOD:SPARSITY",
         out="bundle"),
    Case("convert-prune-twice", lambda e: convert(e, None, "--prune", "channels:0.5", "--prune", "channels:0.3"),
         "--prune names the same method twice", out="bundle"),
    Case("convert-prune-sparsity-1.5", lambda e: convert(e, None, "--prune", "channels:1.5"),
         "'--prune': 'channels:1.5': the sparsity 1.5 is outside (0, 1)", out="bundle"),
    Case("convert-prune-epochs-negative", lambda e: convert(e, None, "--prune-epochs", "-1"), "--prune-epochs", out="bundle"),
    Case("convert-search-time-0", lambda e: convert(e, None, "--search-time", "0"), "--search-time 0.0 is not positive",
         out="bundle"),
    Case("convert-qat-epochs-0", lambda e: convert(e, None, "--qat", "--qat-epochs", "0"), "--qat-epochs", out="bundle"),
    Case("convert-qat-time-0", lambda e: convert(e, None, "--qat-time", "0"), "--qat-time 0.0 is not positive",
         out="bundle"),
    Case("convert-search-time-nan", lambda e: convert(e, None, "--search-time", "nan"), "--search-time nan is not positive",
         out="bundle"),
    Case("convert-input-shape-words", lambda e: convert(e, None, "--input-shape", "big"), "'big' is not a list of whole numbers",
         out="bundle"),
    Case("convert-mean-words", lambda e: convert(e, None, "--mean", "red,green"), "not a comma-separated list of numbers",
         out="bundle"),
    Case("convert-bad-io", lambda e: convert(e, None, "--io", "int4"), "Invalid value for '--io'", out="bundle"),
    Case("convert-unknown-option", lambda e: convert(e, None, "--frobnicate"), "No such option '--frobnicate'", out="bundle"),
    Case("convert-without-calib", lambda e: ["convert", e.w.rgb, "-o", e.out], "Missing option '--calib'", out="bundle"),
    Case("convert-without-out", lambda e: ["convert", e.w.rgb, "--calib", e.w.calib], "Missing option '-o'"),
    Case("convert-out-under-a-file", lambda e: convert(e, None) + ["-o", write(e.tmp / "notes.txt", "x") / "out"],
         "notes.txt is a file", out="notes.txt/out"),
    Case("convert-out-in-proc", lambda e: convert(e, None) + ["-o", "/proc/keras-edge-corpus/bundle"], "cannot be written"),
    Case("convert-out-is-a-file", lambda e: convert(e, None) + ["-o", write(e.tmp / "model.tflite", b"someone's file")],
         "exists and is not a directory", out="model.tflite"),
    Case("convert-out-not-a-bundle", lambda e: convert(e, None) + ["-o", folder(e.tmp / "docs", **{"thesis.txt": "precious"})],
         "not a keras-edge bundle", out="docs"),
    Case("convert-name-with-a-path", lambda e: convert(e, None, "--name", "../evil"), "--name '../evil' cannot be a bundle name",
         out="bundle"),
    Case("convert-std-0", lambda e: convert(e, None, "--scale", "1", "--std", "0"), "--std", out="bundle"),
    Case("convert-calib-missing", lambda e: convert(e, None, calib=e.tmp / "nope"), "no such folder", out="bundle"),
    Case("convert-labels-missing", lambda e: convert(e, None, "--labels", e.tmp / "labels.txt"), "--labels", out="bundle"),
    Case("convert-calib-is-a-file", lambda e: convert(e, None, calib=e.w.image), "is not a folder", out="bundle"),
    Case("convert-calib-corrupt-pngs", lambda e: convert(e, None, calib=folder(e.tmp / "broken", **{
        f"x{i}.png": b"\x89PNG\r\n\x1a\n" + bytes(40) for i in range(3)})), "could be decoded", out="bundle"),
    Case("convert-calib-pickled-npy", lambda e: convert(e, None, calib=write(e.tmp / "x.npy", b"not numpy")),
         "is not a readable NumPy file", out="bundle"),
    # --- convert: past model loading
    Case("convert-calib-empty", lambda e: convert(e, None, calib=empty_dir(e)), "contains no images", out="bundle"),
    Case("convert-eval-missing", lambda e: convert(e, None, "--eval", e.tmp / "held-out"), "held-out", out="bundle"),
    Case("convert-labels-count", lambda e: convert(e, e.w.gray10, "--labels", write(e.tmp / "l.txt", "cat\ndog\n")),
         "--labels", out="bundle"),
    Case("convert-labels-count-keeps-previous",
         lambda e: then(copy_bundle(e), convert(e, e.w.gray10, "--labels", write(e.tmp / "l.txt", "cat\ndog\n"))),
         "has 2 name(s) but the model has 10 classes", out="bundle"),
    Case("convert-input-shape-does-not-fit", lambda e: convert(e, None, "--input-shape", "8,8,3"),
         "does not fit the model's input", out="bundle"),
    Case("convert-mean-3-on-gray", lambda e: convert(e, e.w.gray10, "--scale", "1", "--mean", "1,2,3", "--std", "1"),
         "--mean", out="bundle"),
    Case("convert-needs-preprocess", lambda e: convert(e, e.w.raw), "--preprocess", out="bundle"),
    Case("convert-subclassed-without-import", lambda e: convert(e, e.w.subclassed), "TinyNet", out="bundle"),
    Case("convert-import-missing-module", lambda e: convert(e, None, "--import", "no_such_module_xyz"),
         "importing no_such_module_xyz failed", out="bundle"),
    Case("convert-import-missing-file", lambda e: convert(e, None, "--import", e.tmp / "layers.py"),
         "layers.py: no such Python file", out="bundle"),

    # --- report
    Case("report-missing-dir", lambda e: ["report", e.tmp / "nope"], "nope"),
    Case("report-not-a-bundle", lambda e: ["report", empty_dir(e)], "manifest.json"),
    Case("report-without-report-json", lambda e: ["report", damaged(e, "report.json")],
         "has no report.json", out="bundle"),
    Case("report-corrupt-report-json", lambda e: ["report", damaged(e, "report.json", "{not json")],
         "report.json", out="bundle"),
    Case("report-foreign-manifest", lambda e: ["report", manifest_edit(e, lambda m: m.update(format="keras-edge/99"))],
         "keras-edge/99", out="bundle"),
    Case("report-extra-argument", lambda e: ["report", e.w.bundle, "again"], "unexpected extra argument"),

    # --- prune
    Case("convert-prune-magnitude-without-sparsity", lambda e: convert(e, None, "--prune", "magnitude"),
         "is not METHOD:SPARSITY", out="bundle"),
    Case("prune-magnitude-without-sparsity",
         lambda e: ["prune", e.w.gray10, "-o", e.out, "--method", "magnitude", "--data", e.w.calib],
         "--sparsity is needed for magnitude pruning", out="out.keras"),
    Case("prune-search-target-speedup-below-1",
         lambda e: ["prune", e.w.gray10, "-o", e.out, "--data", e.w.calib, "--target-speedup", "0.5"],
         "--target-speedup 0.5 is not above 1", out="out.keras"),
    Case("prune-search-levels-not-numbers",
         lambda e: ["prune", e.w.gray10, "-o", e.out, "--data", e.w.calib, "--levels", "a,b"],
         "is not a comma-separated list of fractions", out="out.keras"),
    Case("prune-search-level-1", lambda e: ["prune", e.w.gray10, "-o", e.out, "--data", e.w.calib, "--levels", "0.5,1"],
         "--levels 1.0 is outside (0, 1)", out="out.keras"),
    Case("prune-search-budget-2", lambda e: ["prune", e.w.gray10, "-o", e.out, "--data", e.w.calib,
                                             "--max-accuracy-drop", "2"], "--max-accuracy-drop 2", out="out.keras"),
    Case("prune-search-without-data", lambda e: ["prune", e.w.gray10, "-o", e.out], "needs labeled data", out="out.keras"),
    Case("prune-out-h5", lambda e: prune(e, "--epochs", "0") + ["-o", e.tmp / "out.h5"], "does not end in .keras", out="out.h5"),
    Case("prune-sparsity-1.5", lambda e: prune(e, "--sparsity", "1.5"), "--sparsity 1.5 is outside (0, 1)", out="out.keras"),
    Case("prune-sparsity-keeps-previous", lambda e: then(previous_model(e), prune(e, "--sparsity", "1.5")),
         "--sparsity 1.5", out="out.keras"),
    Case("prune-epochs-negative", lambda e: prune(e, "--epochs", "-1"), "--epochs", out="out.keras"),
    Case("prune-batch-size-0", lambda e: prune(e, "--batch-size", "0", "--epochs", "0"), "--batch-size", out="out.keras"),
    Case("prune-lr-negative", lambda e: prune(e, "--lr", "-1", "--epochs", "0"), "--lr", out="out.keras"),
    Case("prune-channel-multiple-0", lambda e: prune(e, "--channel-multiple", "0", "--epochs", "0"), "--channel-multiple",
         out="out.keras"),
    Case("prune-val-split-1.5", lambda e: prune(e, "--val-split", "1.5", "--data", e.w.calib), "--val-split", out="out.keras"),
    Case("prune-method-random", lambda e: ["prune", e.w.gray10, "-o", e.out, "--method", "random", "--sparsity", "0.5"],
         "Invalid value for '--method'", out="out.keras"),
    Case("prune-without-data", lambda e: prune(e), "needs labeled data", out="out.keras"),
    Case("prune-missing-model", lambda e: prune(e, "--epochs", "0", model=e.tmp / "nope.keras"), "no such model file",
         out="out.keras"),
    Case("prune-out-in-proc", lambda e: prune(e, "--epochs", "0") + ["-o", "/proc/keras-edge-corpus.keras"], "cannot be written"),
    Case("prune-criterion-l3", lambda e: prune(e, "--epochs", "0", "--criterion", "l3"), "Invalid value for '--criterion'",
         out="out.keras"),
    Case("prune-out-is-a-dir", lambda e: prune(e, "--epochs", "0") + ["-o", folder(e.tmp / "dir.keras")], "is a directory"),
    Case("prune-out-under-a-file", lambda e: prune(e, "--epochs", "0") + ["-o", write(e.tmp / "f", "x") / "o.keras"],
         "is a file", out="f/o.keras"),
    Case("prune-data-missing", lambda e: then(previous_model(e), prune(e, "--data", e.tmp / "nope")), "nope",
         out="out.keras"),
    Case("prune-data-without-classes", lambda e: then(previous_model(e), prune(e, "--data", folder(e.tmp / "flat", **{
        "x.png": e.w.image.read_bytes()}))), "no class subfolders", out="out.keras"),

    # --- distill
    Case("distill-without-data", lambda e: distill(e), "Missing option '--data'", out="out.keras"),
    Case("distill-missing-teacher", lambda e: distill(e, "--data", e.w.calib) + ["--teacher", e.tmp / "t.keras"],
         "t.keras: no such model file", out="out.keras"),
    Case("distill-without-student", lambda e: ["distill", "--teacher", e.w.gray10, "-o", e.out, "--data", e.w.calib],
         "Missing option '--student'", out="out.keras"),
    Case("distill-out-h5", lambda e: distill(e, "--data", e.w.calib) + ["-o", e.tmp / "s.h5"], "does not end in .keras",
         out="s.h5"),
    Case("distill-subclassed-teacher", lambda e: distill(e, "--data", e.w.calib) + ["--teacher", e.w.subclassed],
         "custom class TinyNet", out="out.keras"),
    Case("distill-data-classes-mismatch", lambda e: distill(e, "--data", e.w.calib, "--epochs", "1"),
         "has 3 class subfolder(s) but the model has 10 outputs", out="out.keras"),
    Case("distill-temperature-0", lambda e: distill(e, "--data", e.w.calib, "--temperature", "0"), "--temperature",
         out="out.keras"),
    Case("distill-alpha-2", lambda e: then(previous_model(e), distill(e, "--data", e.w.calib, "--alpha", "2")),
         "--alpha", out="out.keras"),
    Case("distill-epochs-0", lambda e: distill(e, "--data", e.w.calib, "--epochs", "0"), "--epochs", out="out.keras"),

    # --- deploy (every case fails before any board is contacted)
    Case("deploy-not-a-bundle", lambda e: ["deploy", empty_dir(e), UNREACHABLE, *ssh()], "has no manifest.json"),
    Case("deploy-missing-bundle", lambda e: ["deploy", e.tmp / "nope", UNREACHABLE], "does not exist"),
    Case("deploy-bad-ssh-option", lambda e: ["deploy", e.w.bundle, UNREACHABLE, *ssh("--ssh-option", "ProxyCommand")],
         "'ProxyCommand' is not of the form Key=Value"),
    Case("deploy-without-host", lambda e: ["deploy", e.w.bundle], "Missing argument 'HOST...'"),
    Case("deploy-option-as-host", lambda e: ["deploy", e.w.bundle, *ssh(), "--", "-oProxyCommand=touch /tmp/x"],
         "is not a valid ssh destination"),
    Case("deploy-keep-0", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "--keep", "0"], "Invalid value for '--keep'"),
    Case("deploy-bad-transport", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "--transport", "ftp"],
         "Invalid value for '--transport'"),
    Case("deploy-missing-wheel", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "--install-runner", "--wheel", e.tmp / "k.whl"],
         "Invalid value for '--wheel'"),
    Case("deploy-bad-port", lambda e: ["deploy", e.w.bundle, "pi@board:99999"], "'99999' in 'pi@board:99999' is not a port"),
    Case("deploy-missing-ssh-config", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "-F", e.tmp / "nocfg"],
         "ssh config file"),
    Case("deploy-tampered-bundle", lambda e: ["deploy", tampered_bundle(e), UNREACHABLE, *ssh()], "checksum", out="bundle"),

    # --- deploy --inventory (fleets through Ansible; every case fails before any board is contacted)
    Case("deploy-inventory-missing", lambda e: ["deploy", e.w.bundle, "--inventory", e.tmp / "nope.yml"],
         "--inventory {tmp}/nope.yml does not exist"),
    Case("deploy-inventory-and-hosts", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "-i", hosts_yml(e)],
         "either as HOST... or with --inventory, not both"),
    Case("deploy-serial-without-inventory", lambda e: ["deploy", e.w.bundle, UNREACHABLE, "--serial", "2"],
         "--serial only applies with --inventory"),
    Case("deploy-serial-0", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--serial", "0"], "--serial '0' is not a batch size"),
    Case("deploy-serial-150pct", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--serial", "150%"],
         "'150%' is not a batch size"),
    Case("deploy-max-fail-101", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--max-fail-percentage", "101"],
         "--max-fail-percentage 101 is not a percentage"),
    Case("deploy-forks-0", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--forks", "0"], "--forks"),
    Case("deploy-latency-ceiling-0.5", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--latency-ceiling", "0.5"],
         "--latency-ceiling 0.5 is below 1"),
    Case("deploy-limit-matches-nothing", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--limit", "nosuch"],
         "--limit 'nosuch' matches no host"),
    Case("deploy-latency-ceiling-without-benchmark", lambda e: ["deploy", e.w.bundle, "-i", hosts_yml(e), "--latency-ceiling", "1.5"],
         "the bundle has no board benchmark"),
    Case("deploy-inventory-not-an-inventory", lambda e: ["deploy", e.w.bundle, "-i", write(e.tmp / "inv.yml", "- [unclosed\n")],
         "--inventory"),

    # --- rollback
    Case("rollback-without-host", lambda e: ["rollback", "tiny"], "Missing argument 'HOST...'"),
    Case("rollback-without-anything", lambda e: ["rollback"], "Missing argument 'NAME'"),
    Case("rollback-bad-ssh-option", lambda e: ["rollback", "tiny", UNREACHABLE, *ssh("--ssh-option", "Port")],
         "'Port' is not of the form Key=Value"),
    Case("rollback-option-as-host", lambda e: ["rollback", "tiny", *ssh(), "--", "-oProxyCommand=id"],
         "is not a valid ssh destination"),
    Case("rollback-bad-name", lambda e: ["rollback", "../tiny", UNREACHABLE], "'../tiny' is not a bundle name"),
    Case("rollback-inventory-missing", lambda e: ["rollback", "tiny", "-i", e.tmp / "nope.yml"], "does not exist"),
    Case("rollback-limit-without-inventory", lambda e: ["rollback", "tiny", UNREACHABLE, "--limit", "pis"],
         "--limit only applies with --inventory"),
    Case("rollback-jobs-0", lambda e: ["rollback", "tiny", UNREACHABLE, "--jobs", "0"], "Invalid value for '--jobs'"),

    # --- run
    Case("run-missing-file", lambda e: ["run", e.w.bundle, e.tmp / "nope.png"], "no such file"),
    Case("run-folder-without-images", lambda e: ["run", e.w.bundle, empty_dir(e)], "empty"),
    Case("run-corrupt-tflite", lambda e: ["run", write(e.tmp / "m.tflite", b"not a model at all"), e.w.image],
         "not a TFLite model"),
    Case("run-empty-tflite", lambda e: ["run", write(e.tmp / "m.tflite", b""), e.w.image], "empty"),
    Case("run-truncated-tflite", lambda e: ["run", write(e.tmp / "m.tflite", e.w.tflite.read_bytes()[:2000]), e.w.image],
         "not a valid TFLite model"),
    Case("run-top-k-0", lambda e: ["run", e.w.bundle, e.w.image, "--top-k", "0"], "--top-k"),
    Case("run-camera-99", lambda e: ["run", e.w.bundle, "--camera", "99"], "camera 99 does not exist"),
    Case("run-variant-on-a-tflite", lambda e: ["run", e.w.tflite, e.w.image, "--variant", "int8"],
         "--variant int8 needs a bundle"),
    Case("run-unknown-variant", lambda e: ["run", e.w.bundle, e.w.image, "--variant", "fp64"], "fp64"),
    Case("run-no-source", lambda e: ["run", e.w.bundle], "no SOURCE given"),
    Case("run-missing-target", lambda e: ["run", e.tmp / "nope", e.w.image], "nope"),
    Case("run-target-not-a-bundle", lambda e: ["run", empty_dir(e), e.w.image], "manifest.json"),
    Case("run-threads-list", lambda e: ["run", e.w.bundle, e.w.image, "--threads", "1,2"], "'1,2' gives 2 thread counts"),
    Case("run-threads-0", lambda e: ["run", e.w.bundle, e.w.image, "--threads", "0"], "positive whole number"),
    Case("run-threads-abc", lambda e: ["run", e.w.bundle, e.w.image, "--threads", "abc"], "write it like 4"),
    Case("run-save-outputs-under-a-file", lambda e: ["run", e.w.bundle, e.w.image, "--save-outputs",
                                                     write(e.tmp / "f", "x") / "outs"], "is a file", out="f/outs"),
    Case("run-save-outputs-in-proc", lambda e: ["run", e.w.bundle, e.w.image, "--save-outputs", "/proc/keras-edge-corpus"],
         "cannot be written"),
    Case("run-max-frames-0", lambda e: ["run", e.w.bundle, e.w.image, "--max-frames", "0"], "--max-frames"),
    # --- run: what the outputs mean (issue 13)
    Case("run-draw-under-a-file", lambda e: ["run", e.w.bundle, e.w.image, "--draw", write(e.tmp / "f", "x") / "drawn"],
         "is a file", out="f/drawn"),
    Case("run-score-threshold-1.5", lambda e: ["run", e.w.tflite, e.w.image, "--task", "detection", "--head", "yolo",
                                               "--score-threshold", "1.5"], "--score-threshold is 1.5, not between 0 and 1"),
    Case("run-iou-threshold-0", lambda e: ["run", e.w.tflite, e.w.image, "--task", "detection", "--head", "yolo",
                                           "--iou-threshold", "0"], "--iou-threshold is 0"),
    Case("run-head-on-a-classifier", lambda e: ["run", e.w.tflite, e.w.image, "--head", "yolo"],
         "do not fit task detection: the yolo head wants one output"),
    Case("run-head-with-another-task", lambda e: ["run", e.w.tflite, e.w.image, "--task", "segmentation", "--head", "yolo"],
         "--head describes a detection head, but the task is segmentation"),
    Case("run-detection-without-head", lambda e: ["run", e.w.tflite, e.w.image, "--task", "detection"],
         "--head is needed with task detection"),
    Case("run-anchors-missing", lambda e: ["run", e.w.tflite, e.w.image, "--task", "detection", "--head", "ssd",
                                           "--anchors", e.tmp / "anchors.npy"], "anchors.npy: no such file"),
    Case("run-task-on-a-bundle", lambda e: ["run", e.w.bundle, e.w.image, "--task", "detection", "--head", "yolo"],
         "--task cannot change what bundle"),
    Case("run-score-threshold-on-a-classifier", lambda e: ["run", e.w.bundle, e.w.image, "--score-threshold", "0.5"],
         "--score-threshold applies to detection"),
    Case("run-task-does-not-fit", lambda e: ["run", e.w.tflite, e.w.image, "--task", "segmentation"],
         "the model's outputs do not fit task segmentation"),
    Case("run-workers-0", lambda e: ["run", e.w.bundle, e.w.image, "--workers", "0"], "--workers is 0"),
    Case("run-workers-abc", lambda e: ["run", e.w.bundle, e.w.image, "--workers", "abc"], "'abc' is not a valid integer"),
    Case("run-realtime-on-images", lambda e: ["run", e.w.bundle, e.w.image, "--realtime"], "--realtime needs a video"),
    Case("run-input-shape-does-not-fit", lambda e: ["run", e.w.tflite, e.w.image, "--input-shape", "8,8,3"],
         "cannot resize it to [1, 8, 8, 3]"),
    Case("run-bad-accelerator", lambda e: ["run", e.w.bundle, e.w.image, "--accelerator", "tpu"],
         "Invalid value for '--accelerator'"),
    Case("run-tampered-variant", lambda e: ["run", tampered_bundle(e), e.w.image, "--variant", "int8"],
         "does not match its checksum", out="bundle"),
    Case("run-labels-missing", lambda e: ["run", e.w.tflite, e.w.image, "--labels", e.tmp / "labels.txt"],
         "--labels {tmp}/labels.txt: no such file"),
    Case("run-labels-count", lambda e: ["run", e.w.tflite, e.w.image, "--labels", write(e.tmp / "l.txt", "cat\n")], "--labels"),
    Case("run-undecodable-image", lambda e: ["run", e.w.bundle, write(e.tmp / "x.png", b"\x89PNG broken")],
         "no input could be run"),
    Case("run-corrupt-tflite-fresh-process", lambda e: ["run", write(e.tmp / "m.tflite", b"garbage"), e.w.image],
         "not a TFLite model", fresh_process=True),

    # --- verify
    Case("verify-tampered", lambda e: ["verify", tampered_bundle(e)], "checksum", code=1, out="bundle"),
    Case("verify-missing-variant-file", lambda e: ["verify", damaged(e, "fp32.tflite")],
         "missing", code=1, out="bundle"),
    Case("verify-foreign-format", lambda e: ["verify", manifest_edit(e, lambda m: m.update(format="keras-edge/99"))],
         "keras-edge/99", out="bundle"),
    Case("verify-missing-reference", lambda e: ["verify", damaged(e, "reference.npz")],
         "reference.npz is missing", code=1, out="bundle"),
    Case("verify-unknown-variant", lambda e: ["verify", e.w.bundle, "--variant", "fp64"], "fp64"),
    Case("verify-missing-bundle", lambda e: ["verify", e.tmp / "nope"], "nope"),
    Case("verify-threads-abc", lambda e: ["verify", e.w.bundle, "--threads", "abc"], "write it like 4"),

    # --- bench (here)
    Case("bench-out-is-a-dir", lambda e: ["bench", e.w.bundle, "-o", folder(e.tmp / "results")], "is a directory"),
    Case("bench-out-under-a-file", lambda e: ["bench", e.w.bundle, "-o", write(e.tmp / "f", "x") / "r.json"], "is a file",
         out="f/r.json"),
    Case("bench-ssh-option-without-on", lambda e: ["bench", e.w.bundle, "--ssh-option", "Port=22"],
         "--ssh-option only applies with --on"),
    Case("bench-ssh-config-without-on", lambda e: ["bench", e.w.bundle, "-F", write(e.tmp / "cfg", "")],
         "--ssh-config only applies with --on"),
    Case("bench-out-in-proc", lambda e: ["bench", e.w.bundle, "-o", "/proc/keras-edge-corpus.json"], "cannot be written"),
    Case("bench-min-seconds-negative", lambda e: ["bench", e.w.bundle, "--min-seconds", "-1"], "'--min-seconds'"),
    Case("bench-runs-0", lambda e: ["bench", e.w.bundle, "--runs", "0"], "Invalid value for '--runs'"),
    Case("bench-unknown-variant", lambda e: ["bench", e.w.bundle, "--variant", "fp64", "-o", previous_results(e)], "fp64",
         out="results.json"),
    Case("bench-missing-target", lambda e: ["bench", e.tmp / "nope.tflite", "-o", e.out], "nope.tflite", out="results.json"),
    Case("bench-e2e-missing-image", lambda e: ["bench", e.w.bundle, "--e2e", e.tmp / "cat.jpg", "-o", e.out], "--e2e",
         out="results.json"),
    Case("bench-variant-on-a-tflite", lambda e: ["bench", e.w.tflite, "--variant", "fp32", "-o", e.out],
         "--variant fp32 needs a bundle", out="results.json"),
    Case("bench-threads-0", lambda e: ["bench", e.w.bundle, "--threads", "1,0"], "positive whole number"),
    Case("bench-ssh-option-fresh-process", lambda e: ["bench", e.w.bundle, "--ssh-option", "X=Y", "-o", e.out],
         "--ssh-option only applies with --on", out="results.json", fresh_process=True),
    # --- bench --on (every case fails before any board is contacted)
    Case("bench-on-e2e", lambda e: ["bench", e.w.bundle, "--on", UNREACHABLE, "--e2e", e.w.image, *ssh()],
         "--e2e is not passed to boards by --on"),
    Case("bench-on-bad-ssh-option", lambda e: ["bench", e.w.bundle, "--on", UNREACHABLE, *ssh("--ssh-option", "X")],
         "'X' is not of the form Key=Value"),
    Case("bench-on-option-as-host", lambda e: ["bench", e.w.bundle, "--on", "-oProxyCommand=id", *ssh()],
         "is not a valid ssh destination"),
    Case("bench-on-out-is-a-dir", lambda e: ["bench", e.w.bundle, "--on", UNREACHABLE, "-o", folder(e.tmp / "r"), *ssh()],
         "is a directory"),
    Case("bench-inventory-without-on", lambda e: ["bench", e.w.bundle, "-i", hosts_yml(e)], "--inventory only applies with --on"),
    Case("bench-on-group-not-in-inventory", lambda e: ["bench", e.w.bundle, "--on", "nosuch", "-i", hosts_yml(e)],
         "has no host in nosuch"),
    Case("bench-on-not-a-bundle", lambda e: ["bench", empty_dir(e), "--on", UNREACHABLE, *ssh()], "manifest.json"),

    # --- hostile bundles, models and inputs (issue 22, items 4-7 and 11-13)
    Case("run-jpeg-claiming-30000x30000", lambda e: ["run", e.w.bundle, jpeg_claiming(e, 30000, 30000)],
         "no input could be run"),
    Case("run-fifo-named-png", lambda e: ["run", e.w.bundle, fifo(e)], "no input could be run"),
    Case("run-dev-zero-named-png", lambda e: ["run", e.w.bundle, dev_zero(e)], "no input could be run"),
    Case("run-labels-not-utf8", lambda e: ["run", with_labels(e, b"cat\n\xff\xfe\ndog\n"), e.w.image],
         "labels.txt is not UTF-8 text (byte 0xff at offset 4)", out="bundle"),
    Case("run-labels-count-in-bundle", lambda e: ["run", with_labels(e, b"cat\ndog\n"), e.w.image],
         "labels.txt in the bundle has 2 name(s) but the model has 3 classes", out="bundle"),
    Case("run-labels-too-many-lines", lambda e: ["run", with_labels(e, b"a\n" * 50), e.w.image],
         "has 50 lines, above the limit of 10 lines", out="bundle", env=(("KERAS_EDGE_MAX_LABELS", "10"),)),
    Case("run-labels-long-line", lambda e: ["run", with_labels(e, b"a\n" + b"b" * 2000 + b"\nc\n"), e.w.image],
         "has a line of 2,000 characters, above the limit of 1,000", out="bundle"),
    Case("verify-labels-too-large", lambda e: ["verify", with_labels(e, b"a\nb\nc\n" + b" " * 5000)],
         "labels.txt is 5,006 bytes, above the limit of 4,096", code=1, out="bundle",
         env=(("KERAS_EDGE_MAX_LABELS_BYTES", "4096"),)),
    Case("verify-null-sha256", lambda e: ["verify", variants_edit(e, lambda v: v.update(sha256=None))],
         "the manifest records no sha256 for fp32.tflite", code=1, out="bundle"),
    Case("run-null-sha256", lambda e: ["run", default_edit(e, lambda v: v.update(sha256=None)), e.w.image],
         "records no sha256", out="bundle"),
    Case("verify-reference-bomb", lambda e: ["verify", reference_bomb(e)], "reference.npz inflates to", code=1,
         out="bundle", env=(("KERAS_EDGE_MAX_ARRAY_BYTES", "4000000"),)),
    Case("run-manifest-200000-deep", lambda e: ["run", manifest_raw(e, lambda m: nested_json(200_000)), e.w.image],
         "nests 200,000 levels deep, above the limit of 64", out="bundle"),
    Case("verify-manifest-200000-deep", lambda e: ["verify", manifest_raw(e, lambda m: nested_json(200_000))],
         "nests 200,000 levels deep", out="bundle"),
    Case("report-manifest-200000-deep", lambda e: ["report", manifest_raw(e, lambda m: nested_json(200_000))],
         "nests 200,000 levels deep", out="bundle"),
    Case("report-report-200000-deep", lambda e: ["report", report_edit(e, lambda r: nested_json(200_000))],
         "report.json nests 200,000 levels deep", out="bundle"),
    Case("run-manifest-not-json-number", lambda e: ["run", manifest_raw(e, lambda m: "9" * 5000), e.w.image],
         "manifest.json", out="bundle"),
    Case("run-manifest-variants-an-object", lambda e: ["run", manifest_raw(e, lambda m: m.update(
        variants={"fp32": m["variants"][0]})), e.w.image], "variants is an object, not a list", out="bundle"),
    Case("verify-manifest-file-a-number", lambda e: ["verify", variants_edit(e, lambda v: v.update(file=7))],
         "variants[0].file is a number, not text or null", out="bundle"),
    Case("run-manifest-dtype-empty", lambda e: ["run", manifest_raw(e, lambda m: m["inputs"][0].update(dtype="")),
                                                e.w.image], "inputs[0].dtype '' is not a tensor type", out="bundle"),
    Case("run-manifest-shape-words", lambda e: ["run", manifest_raw(e, lambda m: m["outputs"][0].update(shape=["a"])),
                                                e.w.image], "outputs[0].shape[0] is text, not a whole number", out="bundle"),
    Case("run-manifest-labels-a-list", lambda e: ["run", manifest_raw(e, lambda m: m.update(labels=["a"])), e.w.image],
         "labels is a list, not text or null", out="bundle"),
    Case("run-tflite-tensor-name-not-utf8", lambda e: ["run", tflite_with_bad_name(e), e.w.image],
         "names a tensor with bytes that are not UTF-8 text"),
    Case("run-avi-frames-5000-deep", lambda e: ["run", e.w.tflite, avi_nested(e, 5000)], "no input could be run"),
    Case("report-board-median-fast", lambda e: ["report", report_edit(e, board_run_fast)],
         "results[0].median_ms is 'fast', not a measurement", out="bundle"),
    # --- serve (every case fails before serving: most before binding, the rest while loading on a free port)
    Case("serve-host-without-token", lambda e: ["serve", e.w.bundle, "--host", "0.0.0.0"],
         "--host is 0.0.0.0, which other machines can reach, and no token is set"),
    Case("serve-short-token", lambda e: ["serve", e.w.bundle, "--token", "abc"], "--token is 3 characters"),
    Case("serve-host-name", lambda e: ["serve", e.w.bundle, "--host", "board.local"], "--host is 'board.local', not an IP"),
    Case("serve-port-out-of-range", lambda e: ["serve", e.w.bundle, "--port", "70000"], "--port is 70000"),
    Case("serve-port-in-use", lambda e: ["serve", e.w.bundle, "--port", busy_port(e)], "cannot be used"),
    Case("serve-missing-source", lambda e: ["serve", e.w.bundle, "--source", e.tmp / "nope.mp4"], "no such file or folder"),
    Case("serve-camera-99", lambda e: ["serve", e.w.bundle, "--camera", "99"], "camera 99 does not exist"),
    Case("serve-source-and-camera", lambda e: ["serve", e.w.bundle, "--camera", "0", "--source", e.w.image],
         "--camera and a source are both given"),
    Case("serve-missing-target", lambda e: ["serve", e.tmp / "nope", "--port", "0"], "nope"),
    Case("serve-unknown-variant", lambda e: ["serve", e.w.bundle, "--variant", "fp64", "--port", "0"], "fp64"),
    # --- profile (a per-op table), boards and convert --board
    Case("profile-missing-file", lambda e: ["profile", e.tmp / "none.tflite"], "none.tflite: no such file"),
    Case("profile-not-a-model", lambda e: ["profile", write(e.tmp / "m.tflite", b"hello, not a flatbuffer")], "m.tflite"),
    Case("profile-unknown-variant", lambda e: ["profile", e.w.bundle, "--variant", "fp64"], "has no variant 'fp64'"),
    Case("profile-variant-of-a-tflite", lambda e: ["profile", e.w.tflite, "--variant", "int8"],
         "--variant int8 needs a bundle"),
    Case("profile-threads-zero", lambda e: ["profile", e.w.bundle, "--threads", "0"], "--threads"),
    Case("profile-out-is-a-dir", lambda e: ["profile", e.w.bundle, "--no-times", "-o", folder(e.tmp / "r")], "is a directory"),
    Case("profile-ssh-option-without-on", lambda e: ["profile", e.w.bundle, "--ssh-option", "A=b"],
         "--ssh-option only applies with --on"),
    Case("profile-on-a-tflite", lambda e: ["profile", e.w.tflite, "--on", UNREACHABLE, *ssh()],
         "--on needs a bundle directory"),
    Case("profile-on-option-as-host", lambda e: ["profile", e.w.bundle, "--on", "-oProxyCommand=id", *ssh()],
         "is not a valid ssh destination"),
    Case("boards-refine-without-bundles", lambda e: ["boards", "--refine", "pi4"], "--refine KIND needs the bundles"),
    Case("boards-refine-unknown-kind", lambda e: ["boards", "--refine", "pi9", e.w.bundle],
         "--refine 'pi9' is not a known board kind"),
    Case("boards-refine-no-runs", lambda e: ["boards", "--refine", "pi4", e.w.bundle],
         "holds a bench --on run on a board of kind pi4", code=2),
    Case("boards-bundle-without-refine", lambda e: ["boards", e.w.bundle], "BUNDLE... only applies with --refine"),
    Case("convert-unknown-board", lambda e: convert(e, None, "--board", "pi9"), "--board 'pi9' is not a known board kind",
         out="bundle"),

    # --- doctor and the command itself
    Case("doctor-unknown-option", lambda e: ["doctor", "--fix"], "No such option '--fix'"),
    Case("doctor-extra-argument", lambda e: ["doctor", "now"], "unexpected extra argument"),
    Case("unknown-command", lambda e: ["frobnicate"], "no such command 'frobnicate'"),
    Case("unknown-command-fresh-process", lambda e: ["conver", e.w.rgb], "no such command 'conver'; did you mean convert?", fresh_process=True),
]


# --- the check ------------------------------------------------------------------------------------------

# lines other libraries print on their own: OpenCV's warnings, TensorFlow/absl C++ logs
LEAKS = re.compile(r"^\[ ?WARN:|^[IWEF]\d{4} \d\d:\d\d|^\S+\.cc:\d+\]|oneDNN custom operations", re.M)


def snapshot(path: Path) -> dict[str, str] | None:
    """File listing and sha256 of every file under ``path`` (or of ``path`` itself); None if absent."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    if path.is_dir():
        return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
                for p in sorted(path.rglob("*"))}
    return None


def invoke(argv: list[str], fresh_process: bool, cwd: Path, capfd) -> tuple[int, str, str]:
    if fresh_process:
        proc = subprocess.run([sys.executable, "-m", "keras_edge", *argv], capture_output=True, text=True, cwd=cwd,
                              timeout=120)
        return proc.returncode, proc.stdout, proc.stderr
    capfd.readouterr()
    code = main(argv)
    captured = capfd.readouterr()
    return code, captured.out, captured.err


def test_corpus_covers_every_command():
    from keras_edge.cli import COMMANDS

    assert len(CASES) >= 70 and len({c.id for c in CASES}) == len(CASES)
    covered = {c.id.split("-")[0] for c in CASES}
    assert set(COMMANDS) <= covered, set(COMMANDS) - covered
    assert any(c.id.startswith("bench-on-") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, world, tmp_path, capfd, monkeypatch):
    for key, value in case.env:
        monkeypatch.setenv(key, value)
    env = SimpleNamespace(w=world, tmp=tmp_path, out=tmp_path / (case.out or "unused-output"))
    argv = [str(a) for a in case.argv(env)]
    assert argv, "the case builder returned no arguments"
    out = env.out
    before = snapshot(out)
    parent = out.parent if out.parent.is_dir() else None
    siblings = sorted(p.name for p in parent.iterdir()) if parent else None

    code, stdout, stderr = invoke(argv, case.fresh_process, tmp_path, capfd)

    assert code == case.code, f"exit {code}, expected {case.code}\nstderr:\n{stderr}"
    assert "Traceback" not in stdout + stderr, stderr
    assert not LEAKS.search(stderr), f"a library's own log line leaked:\n{stderr}"
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.lower().startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: "), f"want one `error: ` line, got:\n{stderr}"
    assert lines[-1] == errors[0], f"the error line must be the last one:\n{stderr}"
    expect = case.expect.replace("{tmp}", str(tmp_path))
    assert expect in errors[0], f"{expect!r} not in {errors[0]!r}"
    assert not re.search(r"(variant '[^']+': )\1", errors[0]), f"a doubled prefix: {errors[0]}"
    # nothing half-written, and a previous result untouched
    assert snapshot(out) == before, f"{out} was changed or written"
    if parent is not None:
        assert sorted(p.name for p in parent.iterdir()) == siblings, "a partial or temporary file was left beside the output"
