"""The board runner end to end, in the device-only environment, on the demo's real digits bundle.

`make test-device` builds the fixtures (the digits CNN trained on scikit-learn's digits, converted to
every variant) and points KERAS_EDGE_FIXTURES at them. Commands run in-process through the real CLI
entry point, so exit codes and messages are what a user sees.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from keras_edge.cli import main
from keras_edge.device.engine.runtime import RuntimeName, select_runtime

# tflite_runtime 2.14 (the device-legacy extra) predates the op versions TF 2.21 writes for some
# variants (dynamic-range FULLY_CONNECTED v12); there the tests run the variants it can load.
LEGACY = select_runtime().name is RuntimeName.TFLITE_RUNTIME
LEGACY_VARIANTS = "fp32,int8"


@pytest.fixture(scope="module")
def fx() -> Path:
    root = os.environ.get("KERAS_EDGE_FIXTURES")
    if not root or not (Path(root) / "bundles" / "digits" / "manifest.json").is_file():
        pytest.fail("KERAS_EDGE_FIXTURES does not point at the demo fixtures; run `make test-device`")
    return Path(root)


@pytest.fixture(scope="module")
def bundle(fx) -> Path:
    return fx / "bundles" / "digits"


def cli(capsys, *args) -> tuple[int, str, str]:
    args = [str(a) for a in args]
    if LEGACY and args[0] in ("run", "bench", "verify") and "--variant" not in args and Path(args[1]).is_dir():
        args += ["--variant", LEGACY_VARIANTS if args[0] == "verify" else "int8"]
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def eval_images(fx: Path, per_class: int = 3) -> list[tuple[Path, str]]:
    pairs = []
    for d in sorted((fx / "data" / "eval").iterdir()):
        pairs += [(p, d.name) for p in sorted(d.glob("*.png"))[:per_class]]
    return pairs


def test_run_classifies_real_digits_with_labels(capsys, fx, bundle):
    pairs = eval_images(fx)
    code, out, _ = cli(capsys, "run", bundle, *[p for p, _ in pairs], "--json", "--top-k", "3")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(pairs)
    # tflite_runtime 2.14's x86 wheel runs the int8 body on builtin kernels; its XNNPACK still takes the float
    # softmax head (DEQUANTIZE → SOFTMAX), so both runtimes report XNNPACK in the backend
    assert all(r["backend"] == "cpu-xnnpack" for r in rows)
    assert all(r["runtime"] == str(select_runtime().name) for r in rows)
    assert all(len(r["top_k"]) == 3 and r["top_k"][0]["score"] >= r["top_k"][1]["score"] for r in rows)
    hits = sum(r["top_k"][0]["label"] == cls for r, (_, cls) in zip(rows, pairs))
    assert hits / len(pairs) >= 0.8  # the demo model is ~97% accurate; a broken pipeline is ~10%


@pytest.mark.parametrize("variant", ["fp32", "fp16", "dynamic", "int8", "int16x8"])
def test_every_variant_agrees_with_fp32_on_a_folder(capsys, fx, bundle, variant):
    folder = fx / "data" / "eval" / "7"
    _, ref, _ = cli(capsys, "run", bundle, folder, "--variant", "fp32", "--json", "--top-k", "1")
    code, out, err = cli(capsys, "run", bundle, folder, "--variant", variant, "--json", "--top-k", "1")
    if LEGACY and variant == "dynamic":
        assert code == 2 and "cannot be prepared by tflite_runtime" in err and "FULLY_CONNECTED" in err
        return
    assert code == 0, err
    top = [json.loads(x)["top_k"][0]["index"] for x in out.splitlines()]
    want = [json.loads(x)["top_k"][0]["index"] for x in ref.splitlines()]
    assert np.mean(np.array(top) == np.array(want)) >= 0.9


def test_verify_passes_and_names_a_tampered_variant(capsys, bundle, tmp_path):
    code, out, _ = cli(capsys, "verify", bundle)
    assert code == 0 and out.count("PASS") >= (2 if LEGACY else 4)
    copy = shutil.copytree(bundle, tmp_path / "digits")
    data = bytearray((copy / "int8.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "int8.tflite").write_bytes(bytes(data))
    code, out, err = cli(capsys, "verify", copy)
    assert code == 1
    assert "FAIL" in out and "'int8'" in err and "checksum" in err
    assert err.startswith("error: verify failed") and len(err.strip().splitlines()) == 1


def test_verify_reports_missing_variant_and_foreign_format(capsys, bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "digits")
    (copy / "fp32.tflite").unlink()
    code, _, err = cli(capsys, "verify", copy)
    assert code == 1 and "'fp32'" in err and "missing" in err
    m = json.loads((copy / "manifest.json").read_text())
    m["format"] = "keras-edge/99"
    (copy / "manifest.json").write_text(json.dumps(m))
    code, _, err = cli(capsys, "verify", copy)
    assert code == 2 and "keras-edge/99" in err and err.startswith("error: ")


def test_run_refuses_a_tampered_variant(capsys, bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "digits")
    with open(copy / "fp32.tflite", "ab") as f:
        f.write(b"\0")
    code, _, err = cli(capsys, "run", copy, bundle / "..", "--variant", "fp32")
    assert code == 2 and "does not match its checksum" in err


@pytest.mark.parametrize("content,what", [(b"", "empty"), (b"not a model at all", "not a TFLite model"),
                                          ("truncated", "not a valid TFLite model")])
def test_bad_model_files(capsys, bundle, tmp_path, content, what):
    bad = tmp_path / "bad model ü.tflite"
    bad.write_bytes((bundle / "fp32.tflite").read_bytes()[:2000] if content == "truncated" else content)
    code, _, err = cli(capsys, "run", bad, tmp_path)
    assert code == 2 and what in err and len(err.strip().splitlines()) == 1


def test_bad_and_odd_images_in_a_folder(capsys, fx, bundle, tmp_path):
    src = cv2.imread(str(eval_images(fx, 1)[0][0]), cv2.IMREAD_GRAYSCALE)
    folder = tmp_path / "mixed näme dir"
    folder.mkdir()
    cv2.imwrite(str(folder / "gray ü.png"), src)
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(src, cv2.COLOR_GRAY2BGRA))
    cv2.imwrite(str(folder / "deep16.png"), src.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "huge.png"), np.full((10000, 10000), 255, np.uint8))
    (folder / "zero.png").write_bytes(b"")
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, out, err = cli(capsys, "run", bundle, folder, "--json", "--top-k", "1")
    assert code == 1  # some inputs ran, some were skipped
    ok = {Path(r["source"]).name: r for r in map(json.loads, out.splitlines()) if r["ok"]}
    bad = {Path(r["source"]).name: r["error"] for r in map(json.loads, out.splitlines()) if not r["ok"]}
    assert set(ok) == {"gray ü.png", "rgba.png", "deep16.png", "huge.png"}
    # the same digit, whatever the container, gives the same answer
    assert len({ok[n]["top_k"][0]["index"] for n in ("gray ü.png", "rgba.png", "deep16.png")}) == 1
    assert "empty" in bad["zero.png"] and "not a decodable image" in bad["garbage.jpg"]
    assert "2 skipped" in err


def test_large_jpeg_reduced_decoding_only_within_tolerance(capsys, fx, bundle, tmp_path):
    digit = cv2.imread(str(eval_images(fx, 1)[0][0]), cv2.IMREAD_GRAYSCALE)
    big = tmp_path / "big photo.jpg"
    cv2.imwrite(str(big), cv2.resize(digit, (1920, 1080), interpolation=cv2.INTER_CUBIC))
    code, out, err = cli(capsys, "run", bundle, big, "--json", "--top-k", "1")
    assert code == 0 and "reduced JPEG decoding (1/8)" in err
    full = json.loads(out)["top_k"][0]
    if "decoding at full size" not in err:  # accepted only because the input stayed within one step
        assert "using it" in err
    code, out, err = cli(capsys, "run", bundle, big, "--json", "--top-k", "1", "--decode", "exact")
    assert code == 0 and "reduced JPEG" not in err and json.loads(out)["top_k"][0] == full
    code, out, _ = cli(capsys, "run", bundle, big, "--json", "--top-k", "1", "--decode", "fast")
    assert code == 0 and json.loads(out)["top_k"][0]["index"] == full["index"]


def test_single_undecodable_image_fails_with_one_line(capsys, bundle, tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG broken")
    code, out, err = cli(capsys, "run", bundle, tmp_path / "x.png")
    assert code == 2 and "no input could be run" in err


def test_missing_sources_video_and_camera(capsys, bundle, tmp_path):
    code, _, err = cli(capsys, "run", bundle, tmp_path / "nope.png")
    assert code == 2 and "no such file" in err
    (tmp_path / "clip.mp4").write_bytes(b"this is not a video")
    code, out, err = cli(capsys, "run", bundle, tmp_path / "clip.mp4")
    assert code == 2 and "cannot be opened" in err
    code, _, err = cli(capsys, "run", bundle, "--camera", "97")
    assert code == 2 and "camera 97 does not exist" in err


def test_video_frames_are_all_processed_through_the_workers(capsys, fx, bundle, tmp_path):
    frames = [cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2BGR) for p, _ in eval_images(fx, 2)]
    path = tmp_path / "digits video.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, frames[0].shape[1::-1])
    assert w.isOpened()
    for f in frames:
        w.write(f)
    w.release()
    code, out, err = cli(capsys, "run", bundle, path, "--json")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == len(frames) and rows[-1]["source"].endswith(f"#{len(frames) - 1}")
    assert f"{len(frames)} frames, 0 dropped" in err


def test_outputs_keep_input_order_when_worker_times_vary(capsys, fx, bundle, tmp_path):
    """Huge and tiny images interleaved: the huge ones finish long after later tiny ones, the output stays in order."""
    folder = tmp_path / "mixed sizes"
    folder.mkdir()
    names = []
    for i, (p, _) in enumerate(eval_images(fx, 2)):
        digit = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        size = 2400 if i % 5 == 1 else 32
        img = cv2.resize(digit, (size, size), interpolation=cv2.INTER_NEAREST)
        names.append(f"{i:03d}.png")
        cv2.imwrite(str(folder / names[-1]), img)
    code, out, err = cli(capsys, "run", bundle, folder, "--json", "--top-k", "1", "--workers", "4", "--threads", "1")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    assert [Path(r["source"]).name for r in rows] == names
    assert "1 interpreter thread, 4 decode workers" in err
    code, serial, _ = cli(capsys, "run", bundle, folder, "--json", "--top-k", "1", "--workers", "1")
    assert code == 0 and [r["top_k"] for r in rows] == [json.loads(x)["top_k"] for x in serial.splitlines()]


def test_realtime_video_drops_late_frames_and_reports_latency(capsys, fx, bundle, tmp_path):
    """A video at 1000 frames/s read in real time: frames due while others were read are dropped, never queued."""
    digits = [cv2.imread(str(p)) for p, _ in eval_images(fx, 3)]
    path = tmp_path / "fast.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 1000, (640, 480))
    assert w.isOpened()
    for k in range(200):
        w.write(cv2.resize(digits[k % len(digits)], (640, 480), interpolation=cv2.INTER_NEAREST))
    w.release()
    code, out, err = cli(capsys, "run", bundle, path, "--json", "--top-k", "1", "--realtime")
    assert code == 0, err
    rows = [json.loads(x) for x in out.splitlines()]
    index = [int(r["source"].rsplit("#", 1)[1]) for r in rows]
    assert index == sorted(set(index))                # in order, each frame at most once
    summary = err.strip().splitlines()[-1]
    frames, dropped = (int(x) for x in re.search(r"(\d+) frames, (\d+) dropped", summary).groups())
    assert frames == 200 and len(rows) + dropped == frames
    assert re.search(r"live: [\d.]+ frames/s processed, latency capture to result p50 [\d.]+ ms, p99 [\d.]+ ms", summary)


def test_arrays_feed_the_model_directly(capsys, bundle):
    code, out, _ = cli(capsys, "run", bundle, bundle / "reference.npz", "--variant", "fp32", "--json", "--top-k", "1")
    rows = [json.loads(x) for x in out.splitlines()]
    with np.load(bundle / "reference.npz") as z:
        want = np.argmax(z["output_0"], axis=1)
    assert code == 0 and [r["top_k"][0]["index"] for r in rows] == want.tolist()


def test_bare_tflite_states_its_assumptions(capsys, fx, bundle, tmp_path):
    model = shutil.copy(bundle / "int8.tflite", tmp_path / "model.tflite")
    img = eval_images(fx, 1)[0][0]
    code, out, err = cli(capsys, "run", model, img, "--top-k", "2")
    assert code == 0 and "class " in out  # no labels: class indices
    assert "note: uint8 input takes pixel values directly" in err


def test_gpu_falls_back_with_one_line_or_fails_when_insisted(capsys, fx, bundle):
    img = eval_images(fx, 1)[0][0]
    code, out, err = cli(capsys, "run", bundle, img, "--accelerator", "gpu", "--gpu-delegate", "/nonexistent/libgpu.so")
    assert code == 0 and "note: GPU not used" in err and "running on CPU" in err
    assert "ran on cpu-xnnpack (" in out   # (tflite_runtime 2.14: the float softmax head is XNNPACK's)
    code, _, err = cli(capsys, "run", bundle, img, "--accelerator", "gpu", "--no-fallback",
                       "--gpu-delegate", "/nonexistent/libgpu.so")
    assert code == 2 and err.startswith("error: GPU delegate /nonexistent/libgpu.so did not load")


def test_bench_json_and_output_file(capsys, fx, bundle, tmp_path):
    out_file = tmp_path / "res" / "bench.json"
    img = eval_images(fx, 1)[0][0]
    code, out, _ = cli(capsys, "bench", bundle, "--variant", LEGACY_VARIANTS, "--runs", "5", "--warmup", "1",
                       "--min-seconds", "0", "--threads", "1,2", "--e2e", img, "--json", "-o", out_file)
    assert code == 0
    data = json.loads(out)
    assert json.loads(out_file.read_text()) == data
    env = data["environment"]
    for key in ("runtime", "backend", "cpu", "cores", "os", "arch", "python", "numpy", "governor", "temperature_c"):
        assert key in env
    res = data["results"]
    assert [(r["variant"], r["threads"]) for r in res] == [("fp32", 1), ("fp32", 2), ("int8", 1), ("int8", 2)]
    for r in res:
        assert r["runs"] >= 5 and 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["init_ms"] > 0 and r["first_ms"] > 0 and r["rss_mb"] > 10 and r["bytes"] > 1000
        assert r["e2e"]["full"]["total_ms"] >= r["e2e"]["full"]["infer_ms"] > 0


def test_bench_table_for_people(capsys, bundle):
    code, out, _ = cli(capsys, "bench", bundle, "--runs", "3", "--min-seconds", "0", "--threads", "1")
    assert code == 0 and "median ms" in out.splitlines()[0] and "machine:" in out and "cpu features:" in out


def test_doctor_tries_every_runtime_and_the_gpu(capsys):
    code, out, _ = cli(capsys, "doctor", "--json")
    d = json.loads(out)
    assert code == 0
    usable = [r["name"] for r in d["runtimes"] if r["usable"]]
    assert usable and d["selected_runtime"].startswith(usable[0])
    legacy = next(r for r in d["runtimes"] if r["name"] == "tflite_runtime")
    if legacy["installed"] and int(np.__version__.split(".")[0]) >= 2:  # the numpy-2 diagnosis, for real
        assert not legacy["usable"] and "numpy 1.x" in legacy["error"] and "numpy<2" in legacy["fix"]
    assert d["opencv"]["installed"] and d["system"]["cpu"]["features"]
    assert d["gpu"]["available"] in (True, False) and ("reason" in d["gpu"] or "max_abs_vs_cpu" in d["gpu"])
    code, out, _ = cli(capsys, "doctor")
    assert code == 0 and f"selected: {usable[0]}" in out


def test_probe_model_runs_on_the_selected_runtime():
    from keras_edge.device.engine.core import load
    from keras_edge.device.engine.probe_model import PROBE_TFLITE

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"keras-edge-probe-{os.getpid()}.tflite"
    path.write_bytes(PROBE_TFLITE)
    try:
        e = load(path)
        x = np.ones(e.inputs[0].shape, np.float32)
        y = e.run([x])[0]
    finally:
        path.unlink()
    assert e.inputs[0].shape == (1, 8, 8, 3) and y.shape == (1, 6, 6, 4) and (y >= 0).all() and y.max() > 0


def test_device_commands_start_without_tensorflow():
    code = ("import sys; from keras_edge.cli import main\n"
            "for c in ('run', 'verify', 'bench', 'doctor'):\n"
            "    try: main([c, '--help'])\n"
            "    except SystemExit: pass\n"
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Usage: keras-edge") == 4
