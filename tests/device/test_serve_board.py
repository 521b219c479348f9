"""``keras-edge serve`` in the board's own environment (no TensorFlow, nothing installed beyond the device extra):
a real server process on 127.0.0.1 answers ``POST /infer`` with what ``run --json`` prints, and ``/healthz``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from keras_edge.cli import main
from keras_edge.device.engine.runtime import RuntimeName, select_runtime

VARIANT = ["--variant", "int8"] if select_runtime().name is RuntimeName.TFLITE_RUNTIME else []


@pytest.fixture(scope="module")
def fx() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles" / "digits" / "manifest.json").is_file():
        pytest.fail("KERAS_EDGE_FIXTURES does not point at the demo fixtures; run `make test-device`")
    return Path(root)


def test_serve_answers_infer_like_run_json(fx, capsys):
    bundle = fx / "bundles" / "digits"
    image = sorted((fx / "data" / "eval" / "4").glob("*.png"))[0]
    assert main(["run", str(bundle), str(image), "--json", "--threads", "1", *VARIANT]) == 0
    expected = json.loads(capsys.readouterr().out.splitlines()[0])
    proc = subprocess.Popen([sys.executable, "-m", "keras_edge.cli", "serve", str(bundle), "--port", "0", "--threads",
                             "1", *VARIANT], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url, lines = [], []
    ready = threading.Event()

    def drain() -> None:
        for line in proc.stderr:
            lines.append(line)
            m = re.match(r"^serving \S+ on (http://\S+/) ", line)
            if m:
                url.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        assert ready.wait(120) and url, "".join(lines)
        with urllib.request.urlopen(url[0] + "healthz", timeout=30) as r:
            assert json.load(r) == {"ready": True, "state": "ready"}
        req = urllib.request.Request(url[0] + "infer", data=image.read_bytes(), method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            got = json.load(r)
        drop = ("source", "timing_ms")
        assert {k: v for k, v in got.items() if k not in drop} == {k: v for k, v in expected.items() if k not in drop}
        assert got["top_k"][0]["label"] == "4"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0, "".join(lines)
    assert "tensorflow" not in subprocess.run([sys.executable, "-c", "import keras_edge.device.serve.server, "
                                               "keras_edge.device.serve.handler, sys; print(sorted(sys.modules))"],
                                              capture_output=True, text=True, check=True).stdout


def test_kept_frames_are_decoded_reduced_only_down_to_the_stream_width(fx):
    """While someone watches serve's stream, a 1080p JPEG is decoded at 1/2 (960 px, enough for a 640 px stream)
    where the model alone would take 1/8; nobody watching: as run decodes it, nothing kept."""
    import cv2
    import numpy as np

    from keras_edge.device.run.runner import RunConfig, open_runner

    ok, jpeg = cv2.imencode(".jpg", np.random.default_rng(0).integers(0, 256, (1080, 1920, 3), np.uint8))
    runner = open_runner(RunConfig(target=str(fx / "bundles" / "digits"), decode="fast",
                                   variant=VARIANT[1] if VARIANT else None))
    plain = runner.from_bytes(jpeg.tobytes(), "frame.jpg")
    assert plain.image is None and plain.image_hw == (1080, 1920)
    runner.keep_images(True, 640)
    kept = runner.from_bytes(jpeg.tobytes(), "frame.jpg")
    assert kept.image.shape[:2] == (540, 960) and kept.image_hw == (1080, 1920)
    runner.keep_images(True)
    assert runner.from_bytes(jpeg.tobytes(), "frame.jpg").image.shape[:2] == (1080, 1920)
    runner.keep_images(False)
    assert runner.from_bytes(jpeg.tobytes(), "frame.jpg").image is None
