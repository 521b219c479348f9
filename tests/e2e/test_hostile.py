"""Hostile bundles, models and inputs (issue 22): nothing hangs, nothing explodes, nothing runs that should not.

Commands that could hang or exhaust memory before the fix run in a fresh ``python -m keras_edge`` with a
timeout, so a regression fails the test instead of stopping the suite. The models are tiny and untrained
(only what keras-edge does with hostile data matters); the SavedModel cases build real SavedModels whose
graphs write files, and check that the file is not written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from keras_edge.cli import main
from keras_edge.device.contract import bundle as B
from tests.support import tiny_classifier
from keras_edge.device.run.draw import DRAWN

SIZE = 16


def cli(*args, timeout: float = 180, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``keras-edge ARGS`` in a fresh process; a hang is a TimeoutExpired, i.e. a failed test."""
    return subprocess.run([sys.executable, "-m", "keras_edge", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, cwd=cwd)


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: "), stderr
    return errors[0]


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, write_images) -> SimpleNamespace:
    """A tiny Keras classifier (3 classes, 16x16 RGB), calibration images and its fp32 bundle."""
    root = tmp_path_factory.mktemp("hostile")
    model = tiny_classifier(root / "tiny.keras", SIZE)
    calib = write_images(root / "calib", {"a": 4, "b": 4, "c": 4}, size=SIZE)
    bundle = root / "bundle"
    assert main(["convert", str(root / "tiny.keras"), "-o", str(bundle), "--calib", str(calib), "--variants", "fp32",
                 "--name", "tiny"]) == 0
    return SimpleNamespace(root=root, model=root / "tiny.keras", keras_model=model, calib=calib, bundle=bundle,
                           image=next((calib / "a").glob("*.png")))


# --- item 4: decoded pixels checked from the header, before decoding -------------------------------------

def png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose IHDR claims width x height, followed by a sliver of data: OpenCV would allocate first."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(1000)))
                     + chunk(b"IEND", b""))
    return path


def test_a_jpeg_claiming_30000x30000_is_refused_from_its_header(tiny, tmp_path):
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 30000, 30000, 1) + b"\x01\x11\x00"
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(b"\xff\xd8" + sof + b"\xff\xd9")
    assert bomb.stat().st_size < 100
    proc = cli("run", tiny.bundle, bomb, tiny.image)
    assert proc.returncode == 1, proc.stderr          # the good image ran, the bomb did not
    assert "bomb.jpg is 30000x30000, 900,000,000 pixels, above the limit of 100,000,000 pixels" in proc.stderr
    assert "KERAS_EDGE_MAX_PIXELS" in proc.stderr and "Traceback" not in proc.stderr
    assert f"{tiny.image}:" in proc.stdout


def test_bomb_pngs_in_convert_calib_are_refused_before_decoding(tiny, tmp_path):
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(3):
        png_claiming(calib / f"bomb{i}.png", 30000, 30000)
    proc = cli("convert", tiny.model, "-o", tmp_path / "out", "--calib", calib, "--variants", "fp32")
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and "images could be decoded (first: " in line and "bomb" in line
    assert "above the limit of 100,000,000 pixels" in line and not (tmp_path / "out").exists()


def test_the_pixel_limit_is_overridable_and_real_images_are_measured(tiny, tmp_path):
    proc = cli("run", tiny.bundle, tiny.image, env={"KERAS_EDGE_MAX_PIXELS": "255"})   # 16x16 = 256 pixels
    assert proc.returncode == 2 and "is 16x16, 256 pixels, above the limit of 255 pixels" in proc.stderr
    assert cli("run", tiny.bundle, tiny.image, env={"KERAS_EDGE_MAX_PIXELS": "256"}).returncode == 0
    bad = cli("run", tiny.bundle, tiny.image, env={"KERAS_EDGE_MAX_PIXELS": "lots"})
    assert bad.returncode == 2 and one_error_line(bad.stderr).startswith("error: KERAS_EDGE_MAX_PIXELS='lots' is not")


# --- item 5: regular files only ------------------------------------------------------------------------------

def test_a_fifo_and_a_link_to_dev_zero_named_png_are_refused_without_blocking(tiny, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(tiny.image, folder / "good.png")
    os.mkfifo(folder / "x.png")
    (folder / "z.png").symlink_to("/dev/zero")
    proc = cli("run", tiny.bundle, folder, timeout=120)        # before: blocked forever on the FIFO
    assert proc.returncode == 1, proc.stderr
    assert "x.png is a FIFO (named pipe), not a regular file" in proc.stderr
    assert "z.png is a character device, not a regular file" in proc.stderr
    assert "good.png:" in proc.stdout and "1/3 inputs ran" in proc.stdout
    # given directly, and as a video name: refused the same way (OpenCV would block opening a FIFO)
    os.mkfifo(tmp_path / "clip.avi")
    proc = cli("run", tiny.bundle, folder / "x.png", tmp_path / "clip.avi", timeout=120)
    assert proc.returncode == 2 and "clip.avi is a FIFO" in proc.stderr


# --- item 6: symlink loops --------------------------------------------------------------------------------------

def test_a_link_back_up_the_tree_adds_nothing_and_a_deeper_loop_ends(tiny, tmp_path):
    folder = tmp_path / "loop"
    (folder / "a" / "b").mkdir(parents=True)
    shutil.copy(tiny.image, folder / "a" / "only.png")
    (folder / "a" / "up").symlink_to("..")                     # before: 41 results
    (folder / "a" / "b" / "round").symlink_to("../../a")       # before: never ended
    proc = cli("run", tiny.bundle, folder, "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(ln)["source"] for ln in proc.stdout.splitlines()] == [str(folder / "a" / "only.png")]


def test_calibration_on_a_looping_folder_ends(tiny, tmp_path):
    from keras_edge.calibration.dataset import scan_folder

    folder = tmp_path / "calib"
    shutil.copytree(tiny.calib, folder)
    (folder / "a" / "again").symlink_to("..")
    (folder / "b" / "self").symlink_to(".")
    index = scan_folder(folder)
    assert len(index.records) == 12 and index.class_names == ("a", "b", "c")


def test_folders_nested_deeper_than_the_limit_are_one_error(tiny, tmp_path):
    deep = tmp_path / "deep"
    path = deep
    for i in range(6):
        path = path / f"d{i}"
    path.mkdir(parents=True)
    shutil.copy(tiny.image, path / "x.png")
    proc = cli("run", tiny.bundle, deep, env={"KERAS_EDGE_MAX_FOLDER_DEPTH": "4"})
    assert proc.returncode == 2
    assert "nests folders (at" in one_error_line(proc.stderr) and "above the limit of 4 levels deep" in proc.stderr
    assert cli("run", tiny.bundle, deep, env={"KERAS_EDGE_MAX_FOLDER_DEPTH": "6"}).returncode == 0


# --- item 8: run --draw never overwrites a file it did not draw ------------------------------------------------

def test_draw_leaves_an_unrelated_file_of_the_same_name_alone(tiny, tmp_path, capsys):
    out = tmp_path / "drawn"
    out.mkdir()
    name = tiny.image.name
    (out / name).write_bytes(b"the user's own picture")
    assert main(["run", str(tiny.bundle), str(tiny.image), "--draw", str(out)]) == 0
    assert (out / name).read_bytes() == b"the user's own picture"
    drawn = out / f"{tiny.image.stem}-2.png"
    assert drawn.stat().st_size > 0
    first = drawn.stat().st_mtime_ns
    time.sleep(0.01)
    assert main(["run", str(tiny.bundle), str(tiny.image), "--draw", str(out)]) == 0   # its own drawing: replaced
    assert sorted(p.name for p in out.iterdir()) == sorted([name, drawn.name, DRAWN])
    assert drawn.stat().st_mtime_ns != first and (out / name).read_bytes() == b"the user's own picture"


# --- item 9: what a killed convert leaves is cleaned by the next ----------------------------------------------

def test_a_convert_killed_mid_way_leaves_nothing_after_the_next(tiny, tmp_path):
    out = tmp_path / "bundle"
    args = [sys.executable, "-m", "keras_edge", "convert", str(tiny.model), "-o", str(out), "--calib", str(tiny.calib),
            "--variants", "fp32,fp16,dynamic,int8"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    try:
        while not list(tmp_path.glob(".bundle.partial-*")):
            assert proc.poll() is None and time.monotonic() < deadline, "convert never started its bundle"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert list(tmp_path.glob(".bundle.partial-*")), "nothing was left to clean (killed too late?)"
    assert main(["convert", str(tiny.model), "-o", str(out), "--calib", str(tiny.calib), "--variants", "fp32"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    assert B.read_manifest(out).name == "tiny"


def test_a_swap_killed_between_its_renames_gets_the_previous_bundle_back(tiny, tmp_path, capsys):
    out = shutil.copytree(tiny.bundle, tmp_path / "bundle")
    before = (out / B.MANIFEST).read_bytes()
    host = socket.gethostname().replace("-", "_")
    old = tmp_path / f".bundle.old-{dead_pid()}@{host}-x1y2z3"
    out.rename(old)                                  # as a convert killed after its first rename leaves it
    alive = tmp_path / f".bundle.partial-{os.getpid()}@{host}-abc123"
    alive.mkdir()                                    # a build still running (this process): left alone
    labels = tmp_path / "labels.txt"
    labels.write_text("one\ntwo\n")
    # the next convert fails (2 labels, 3 classes) after putting the previous bundle back
    assert main(["convert", str(tiny.model), "-o", str(out), "--calib", str(tiny.calib), "--variants", "fp32",
                 "--labels", str(labels)]) == 2
    assert "has 2 name(s) but the model has 3 classes" in capsys.readouterr().err
    assert (out / B.MANIFEST).read_bytes() == before and not old.exists() and alive.is_dir()


# --- item 3: SavedModel safe mode --------------------------------------------------------------------------

def savedmodel(path: Path, canary: Path, how: str) -> Path:
    """A SavedModel whose serving function writes ``canary`` (tf.io.write_file) or runs Python (tf.py_function)."""
    import tensorflow as tf

    class Model(tf.Module):
        def __init__(self):
            self.scale = tf.Variable(0.5)

        @tf.function(input_signature=[tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name="pixels")])
        def serve(self, x):
            if how == "write":
                tf.io.write_file(str(canary), "written by the model")
            else:
                tf.py_function(lambda: Path(canary).write_text("python ran"), [], [])
            return {"probs": tf.nn.softmax(tf.reduce_mean(x, axis=[1, 2]) * self.scale)}

    m = Model()
    tf.saved_model.save(m, str(path), signatures={"serving_default": m.serve})
    assert not canary.exists()   # saving traces the function but does not run it
    return path


@pytest.mark.parametrize("how,op", [("write", "WriteFile"), ("python", "EagerPyFunc")])
def test_a_savedmodel_that_writes_files_or_runs_python_is_refused_before_it_runs(tiny, tmp_path, how, op):
    canary = tmp_path / "canary.txt"
    sm = savedmodel(tmp_path / "sm", canary, how)
    proc = cli("convert", sm, "-o", tmp_path / "out", "--calib", tiny.calib, "--variants", "fp32", "--preprocess", "unit")
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and "reads or writes files or runs Python" in line and op in line
    assert "pass --unsafe" in line
    assert not canary.exists() and not (tmp_path / "out").exists()
    if how == "write":   # the user's opt-in: the graph runs and writes, so the refusal was not a lucky accident
        cli("convert", sm, "-o", tmp_path / "out", "--calib", tiny.calib, "--variants", "fp32", "--preprocess", "unit",
            "--unsafe")
        assert canary.exists()


def test_a_keras_export_passes_the_savedmodel_scan(tiny, tmp_path):
    from keras_edge.host.savedmodel_safety import risky_ops

    tiny.keras_model.export(str(tmp_path / "exported"), verbose=False)
    pb = (tmp_path / "exported" / "saved_model.pb").read_bytes()
    assert risky_ops(pb) == []       # its checkpoint save/restore functions are the standard path
    assert b"RestoreV2" in pb and b"SaveV2" in pb


# --- item 14: a damaged model's NaN scores are not a result ------------------------------------------------

def test_nan_scores_are_an_error_not_a_class(tiny, tmp_path):
    import tensorflow as tf

    model = tiny.keras_model
    weights = [np.full_like(w, np.nan) if w.ndim == 2 else w for w in model.get_weights()]
    clone = type(model).from_config(model.get_config())
    clone.set_weights(weights)
    path = tmp_path / "nan.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(clone).convert())
    proc = cli("run", path, tiny.image)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert " nan" not in proc.stdout and "outputs are not numbers (NaN or infinity)" in proc.stderr


# --- item 13: a full disk during convert and prune is one line, nothing half-written -----------------------------

def on_small_disk(mount: Path, kib: int, argv: list) -> subprocess.CompletedProcess | None:
    """Run ``argv`` with a ``kib`` KiB tmpfs mounted at ``mount`` (in a private mount namespace: as root, or
    as a user where user namespaces are allowed), then list what is left there (stdout after a marker);
    None where this machine cannot mount one."""
    script = f'mount -t tmpfs -o size={kib}k tmpfs "{mount}" || exit 99; "$@"; rc=$?; echo "--- left:"; ls -A "{mount}"; exit $rc'
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        proc = subprocess.run([*prefix, "sh", "-c", script, "sh", *map(str, argv)], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 99 and not proc.stderr.startswith("unshare:"):   # mounted, and the command ran
            return proc
    return None


@pytest.mark.parametrize("command", ["convert", "prune"])
def test_a_full_disk_is_one_error_line_and_leaves_nothing(tiny, tmp_path, command):
    mount = tmp_path / "small"
    mount.mkdir()
    if command == "convert":
        args = ["convert", tiny.model, "-o", mount / "bundle", "--calib", tiny.calib, "--variants", "fp32,fp16"]
    else:
        args = ["prune", tiny.model, "-o", mount / "out.keras", "--method", "magnitude", "--sparsity", "0.5",
                "--data", tiny.calib, "--epochs", "0"]
    proc = on_small_disk(mount, 8, [sys.executable, "-m", "keras_edge", *args])
    if proc is None:
        pytest.skip("cannot mount a small tmpfs here (needs root or user namespaces)")
    line = one_error_line(proc.stderr)
    assert proc.returncode == 2 and "the disk is full" in line and "No space left on device" in line, proc.stderr
    left = proc.stdout.partition("--- left:")[2].split()
    assert left == [], f"left behind on the full disk: {left}"
