"""Limits on untrusted data (device/contract/limits.py, files.py, fields.py; inputs/imagesize.py; engine/trial.py)."""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract.errors import BundleError, DataError, EdgeError, ModelError
from keras_edge.device.contract.fields import check_manifest
from keras_edge.device.contract.files import check_arrays, parse_json, read_regular, read_text, walk
from keras_edge.device.contract.limits import Limits, json_depth, limits
from keras_edge.device.engine.trial import trial
from keras_edge.device.inputs import imagesize


def within(seconds: float, fn, *args):
    """``fn(*args)`` on a thread; a call that blocks (a FIFO opened for reading) fails the test instead of hanging it."""
    box: dict = {}

    def go():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e
    t = threading.Thread(target=go, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    if "error" in box:
        raise box["error"]
    return box.get("value")


# --- the limits themselves ---------------------------------------------------------------------------------

def test_every_limit_has_an_environment_variable_and_bad_values_are_one_line():
    env = {Limits.variable(name): "7" for name in Limits.__dataclass_fields__}
    assert set(vars(limits(env)).values()) == {7}
    assert limits({}) == Limits()
    assert limits({"KERAS_EDGE_MAX_PIXELS": "1_000"}).max_pixels == 1000
    with pytest.raises(EdgeError, match=r"KERAS_EDGE_MAX_PIXELS='many' is not a whole number"):
        limits({"KERAS_EDGE_MAX_PIXELS": "many"})
    with pytest.raises(EdgeError, match=r"KERAS_EDGE_MAX_JSON_DEPTH='0' is not positive"):
        limits({"KERAS_EDGE_MAX_JSON_DEPTH": "0"})


def test_json_depth_counts_brackets_outside_strings_only():
    assert json_depth('{"a": [1, {"b": "[[[[\\"[["}]}') == 3
    assert json_depth("[" * 200_000 + "]" * 200_000) == 200_000
    assert json_depth('"no brackets"') == 0 and json_depth("") == 0


def test_deep_json_is_refused_before_python_recurses():
    with pytest.raises(BundleError, match="x nests 200,000 levels deep, above the limit of 64 levels deep"):
        parse_json("[" * 200_000 + "]" * 200_000, "x", "fix it", BundleError)
    with pytest.raises(DataError, match="is not valid JSON"):
        parse_json("9" * 5000, "x", "fix it")   # Python's int-digits limit: a ValueError, not a JSONDecodeError
    assert parse_json('{"a": [1]}', "x", "") == {"a": [1]}


# --- images: size from the header ------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_the_header_gives_the_real_size_of_every_format(ext):
    img = np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    fmt, w, h = imagesize.dimensions(buf.tobytes())
    assert (w, h) == (37, 23) and fmt == {".jpg": "jpeg"}.get(ext, ext[1:])
    with pytest.raises(DataError, match=r"is 37x23, 851 pixels, above the limit of 850 pixels"):
        imagesize.check(buf.tobytes(), "x" + ext, max_pixels=850)
    assert imagesize.check(buf.tobytes(), "x" + ext, max_pixels=851)[1:] == (37, 23)


def test_webp_lossless_and_bigtiff_headers():
    ok, buf = cv2.imencode(".webp", np.zeros((5, 9, 3), np.uint8), [cv2.IMWRITE_WEBP_QUALITY, 101])   # lossless
    assert ok and imagesize.dimensions(buf.tobytes()) == ("webp", 9, 5)
    bigtiff = (b"II+\x00" + (8).to_bytes(2, "little") + bytes(2) + (16).to_bytes(8, "little")
               + (2).to_bytes(8, "little")
               + (256).to_bytes(2, "little") + (4).to_bytes(2, "little") + (1).to_bytes(8, "little") + (70000).to_bytes(8, "little")
               + (257).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(8, "little") + (9).to_bytes(8, "little"))
    assert imagesize.dimensions(bigtiff) == ("tiff", 70000, 9)


def test_unknown_or_cut_headers_are_refused_not_decoded():
    ok, buf = cv2.imencode(".png", np.zeros((4, 4), np.uint8))
    for data in (buf.tobytes()[:20], b"P6\n4 4\n255\n" + bytes(48), b"GIF89a" + bytes(20), b""):
        assert imagesize.dimensions(data) is None
        with pytest.raises(DataError, match="is not a decodable image"):
            imagesize.check(data, "x.png")


def test_reduced_jpeg_decoding_counts_the_reduced_pixels():
    ok, buf = cv2.imencode(".jpg", np.zeros((80, 80, 3), np.uint8))
    with pytest.raises(DataError, match=r"\(1/2 scale: 40x40\), 1,600 pixels"):
        imagesize.check(buf.tobytes(), "x.jpg", reduce=2, max_pixels=1599)
    assert imagesize.check(buf.tobytes(), "x.jpg", reduce=8, max_pixels=100)


# --- files: regular files only, bounded ---------------------------------------------------------------------------

def test_fifos_devices_and_directories_are_refused_without_opening_them(tmp_path):
    os.mkfifo(tmp_path / "x.png")
    (tmp_path / "z.png").symlink_to("/dev/zero")
    (tmp_path / "loop.png").symlink_to("loop.png")
    with pytest.raises(DataError, match="x.png is a FIFO .named pipe., not a regular file"):
        within(10, read_regular, tmp_path / "x.png", 100, "max_image_bytes")
    with pytest.raises(DataError, match="z.png is a character device, not a regular file"):
        within(10, read_regular, tmp_path / "z.png", 100, "max_image_bytes")
    with pytest.raises(DataError, match="loop.png cannot be read"):
        read_regular(tmp_path / "loop.png", 100, "max_image_bytes")
    with pytest.raises(DataError, match="is a directory"):
        read_regular(tmp_path, 100, "max_image_bytes")


def test_a_file_above_its_limit_is_refused_unread_and_text_must_be_utf8(tmp_path):
    (tmp_path / "big").write_bytes(b"x" * 101)
    with pytest.raises(DataError, match=r"big is 101 bytes, above the limit of 100 bytes; .*KERAS_EDGE_MAX_LABELS_BYTES"):
        read_regular(tmp_path / "big", 100, "max_labels_bytes")
    assert read_regular(tmp_path / "big", 101, "max_labels_bytes") == b"x" * 101
    (tmp_path / "t.txt").write_bytes(b"ok\n\xe9t\xe9\n")
    with pytest.raises(BundleError, match=r"t.txt is not UTF-8 text \(byte 0xe9 at offset 3\)"):
        read_text(tmp_path / "t.txt", 100, "max_labels_bytes", BundleError)


def test_an_npz_that_inflates_beyond_the_limit_is_refused_from_its_headers(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "bomb.npz", output_0=np.zeros((1000, 1000), np.float32))   # 4 MB in ~4 KB
    assert (tmp_path / "bomb.npz").stat().st_size < 50_000
    monkeypatch.setenv("KERAS_EDGE_MAX_ARRAY_BYTES", "1000000")
    with pytest.raises(BundleError, match=r"ref inflates to 4,000,128 bytes, above the limit of 1,000,000 bytes"):
        check_arrays(tmp_path / "bomb.npz", "ref", BundleError)
    # an .npz whose zip entry is small but whose .npy header claims a huge array
    text = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000,), }".ljust(117) + b"\n"
    header = b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text
    with zipfile.ZipFile(tmp_path / "liar.npz", "w") as z:
        z.writestr("output_0.npy", header + bytes(64))
    with pytest.raises(DataError, match=r"liar holds arrays of 400,000,000 bytes"):
        check_arrays(tmp_path / "liar.npz", "liar")
    np.save(tmp_path / "fine.npy", np.zeros(10))
    check_arrays(tmp_path / "fine.npy", "fine")


# --- folder walks --------------------------------------------------------------------------------------------------

def test_a_walk_enters_each_real_folder_once_and_ends(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "x.png").write_bytes(b"1")
    (tmp_path / "a" / "b" / "y.png").write_bytes(b"2")
    (tmp_path / "a" / "up").symlink_to("..")
    (tmp_path / "a" / "b" / "round").symlink_to("../../a")
    (tmp_path / "twin").symlink_to("a")                     # a second way into a: walked once
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "z.png").write_bytes(b"3")
    found = list(walk(tmp_path))
    assert [p.name for p in found] == ["x.png", "y.png"]


def test_folders_deeper_than_the_limit_are_one_error(tmp_path, monkeypatch):
    deep = tmp_path.joinpath(*[f"d{i}" for i in range(5)])
    deep.mkdir(parents=True)
    (deep / "x.png").write_bytes(b"1")
    monkeypatch.setenv("KERAS_EDGE_MAX_FOLDER_DEPTH", "4")
    with pytest.raises(DataError, match=r"nests folders .* 5 levels deep, above the limit of 4 levels deep"):
        list(walk(tmp_path))
    monkeypatch.setenv("KERAS_EDGE_MAX_FOLDER_DEPTH", "5")
    assert len(list(walk(tmp_path))) == 1


# --- manifest field types --------------------------------------------------------------------------------------------

GOOD = {"format": "keras-edge/1", "name": "m", "inputs": [{"name": "x", "shape": [1, 4], "dtype": "float32"}],
        "outputs": [{"name": "y", "shape": [1, 3], "dtype": "float32"}],
        "variants": [{"name": "fp32", "mode": "fp32", "status": "ok", "file": "fp32.tflite", "sha256": "ab" * 32}]}


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(variants={"fp32": {}}), "variants is an object, not a list"),
    (lambda m: m["variants"][0].update(file=7), "variants[0].file is a number, not text or null"),
    (lambda m: m["inputs"][0].update(dtype=""), "inputs[0].dtype '' is not a tensor type"),
    (lambda m: m["outputs"][0].update(shape=[1, True]), "outputs[0].shape[1] is true/false, not a whole number"),
    (lambda m: m["variants"][0].update(sha256="xyz"), "variants[0].sha256 is not a sha256"),
    (lambda m: m["variants"][0].update(bytes=-1), "variants[0].bytes is negative"),
    (lambda m: m.update(labels=["a"]), "labels is a list, not text or null"),
    (lambda m: m["variants"][0].update(tolerance={"max_abs": float("nan")}), "variants[0].tolerance.max_abs is nan"),
])
def test_wrongly_typed_fields_are_named(edit, message):
    m = json.loads(json.dumps(GOOD))
    edit(m)
    with pytest.raises(BundleError, match="manifest.json is malformed: " + message.replace("[", r"\[").replace("]", r"\]")):
        check_manifest(m)
    check_manifest(json.loads(json.dumps(GOOD)))


# --- a trial run in a forked child ----------------------------------------------------------------------------------

def test_a_build_that_crashes_or_hangs_is_refused_and_this_process_lives(tmp_path):
    def crash():
        ctypes.string_at(0)          # a real SIGSEGV, in the child

    with pytest.raises(ModelError, match=r"m.tflite crashed the interpreter \(SIGSEGV\) in a trial run"):
        trial(crash, tmp_path / "m.tflite", 30)
    with pytest.raises(ModelError, match=r"did not finish one inference in 0.5 s"):
        trial(lambda: time.sleep(60), tmp_path / "m.tflite", 0.5)

    def fails():
        raise ValueError("the real load says why")
    trial(fails, tmp_path / "m.tflite", 30)   # a Python error is not a crash


# --- what a killed build leaves beside a bundle ---------------------------------------------------------------------

def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_siblings_of_dead_builds_are_cleaned_and_the_previous_bundle_put_back(tmp_path):
    host = socket.gethostname().replace("-", "_")
    target = tmp_path / "bundle"
    dead = dead_pid()
    old = tmp_path / f".bundle.old-{dead}@{host}-aaa"
    old.mkdir()
    (old / B.MANIFEST).write_text("{}")
    partial = tmp_path / f".bundle.partial-{dead}@{host}-bbb"
    partial.mkdir()
    running = tmp_path / f".bundle.partial-{os.getpid()}@{host}-ccc"
    running.mkdir()
    elsewhere = tmp_path / f".bundle.partial-{dead}@another_machine-ddd"
    elsewhere.mkdir()
    other = tmp_path / f".other.partial-{dead}@{host}-eee"
    other.mkdir()
    done = B.recover_stale(target)
    assert sorted(done) == sorted([target, partial])
    assert (target / B.MANIFEST).read_text() == "{}" and not old.exists() and not partial.exists()
    assert running.is_dir() and elsewhere.is_dir() and other.is_dir()
