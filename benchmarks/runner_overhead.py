"""The runner against a bare interpreter loop, on MobileNetV2 (alpha 1.0, 224, weights=None), fp32 and int8.

Measured side by side in one run on this machine:
- ``keras-edge bench`` median / a bare ``Interpreter.invoke`` loop median on the same file (target <= 1.05);
- cold start: process start to first result of ``keras-edge run`` on one image (target < 0.5 s);
- peak RSS of the bench worker (target < 80 MB for int8);
- end to end per 1920x1080 JPEG (read + decode + preprocess + inference) versus inference alone.

    python benchmarks/runner_overhead.py [--out benchmarks/results/runner_mobilenetv2.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def photos() -> list[np.ndarray]:
    """Real photographs shipped with scikit-image, BGR."""
    import cv2
    from skimage import data

    return [cv2.cvtColor(f(), cv2.COLOR_RGB2BGR) for f in (data.astronaut, data.coffee, data.chelsea, data.rocket)]


def frame_1080p(path: Path) -> Path:
    """A 1920x1080 JPEG tiled from real photographs at their native resolution (real detail, no upscaling)."""
    import cv2

    out = np.zeros((1080, 1920, 3), np.uint8)
    tiles, x, y, row = photos() * 6, 0, 0, 0
    for t in tiles:
        h, w = min(t.shape[0], 1080 - y), min(t.shape[1], 1920 - x)
        if h <= 0:
            break
        out[y:y + h, x:x + w] = t[:h, :w]
        x, row = x + w, max(row, h)
        if x >= 1920:
            x, y, row = 0, y + row, 0
    cv2.imwrite(str(path), out, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return path


def convert_mobilenet(root: Path) -> dict[str, Path]:
    import cv2
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=1.0, input_shape=(224, 224, 3), weights=None)
    calib = [(cv2.resize(p, (224, 224))[:, :, ::-1].astype(np.float32) / 127.5 - 1)[None] for p in photos()] * 4
    files = {}
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    files["fp32"] = root / "mobilenetv2_fp32.tflite"
    files["fp32"].write_bytes(conv.convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    files["int8"] = root / "mobilenetv2_int8.tflite"
    files["int8"].write_bytes(conv.convert())
    return files


def bare_loop(path: Path, threads: int, runs: int, warmup: int) -> float:
    """The baseline: the interpreter alone, same threads, same timing method; median ms."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).integers(0, 255, d["shape"]).astype(d["dtype"]))
    for _ in range(warmup):
        it.invoke()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter_ns()
        it.invoke()
        ts.append(time.perf_counter_ns() - t0)
    return statistics.median(ts) / 1e6


def cold_start(path: Path, image: Path, repeats: int = 5) -> list[float]:
    exe = Path(sys.executable).with_name("keras-edge")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run([str(exe), "run", str(path), str(image), "--top-k", "1", "--preprocess", "tf"],
                           capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
    return times


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/runner_mobilenetv2.json")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    from keras_edge.device.bench.measure import BenchConfig, bench
    from keras_edge.device.engine.runtime import default_threads

    threads = default_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = convert_mobilenet(root)
        image = frame_1080p(root / "frame 1080p.jpg")
        cold_img = root / "photo.jpg"
        import cv2

        cv2.imwrite(str(cold_img), photos()[0])
        rows = []
        for name, path in files.items():
            # alternate baseline and runner so that load from other processes hits both alike
            bares, runners = [], []
            for rnd in range(args.rounds):
                bares.append(bare_loop(path, threads, args.runs, 5))
                rep = bench(BenchConfig(target=str(path), runs=args.runs, warmup=5, min_seconds=0, threads=(threads,),
                                        e2e=str(image) if rnd == 0 else None, preprocess="tf"))
                runners.append(rep.results[0].median_ms)
                r = rep.results[0] if rnd == 0 else r
            bares.append(bare_loop(path, threads, args.runs, 5))
            bare, runner = statistics.median(bares), statistics.median(runners)
            cold = cold_start(path, cold_img, 7)
            rows.append({"variant": name, "bytes": path.stat().st_size, "threads": threads,
                         "runner_median_ms": runner, "bare_median_ms": bare, "bare_rounds_ms": bares,
                         "runner_rounds_ms": runners, "ratio": runner / bare,
                         "ratio_of_minima": min(runners) / min(bares), "load_avg": os.getloadavg(),
                         "init_ms": r.init_ms, "first_ms": r.first_ms,
                         "rss_mb": r.rss_mb, "cold_start_s": cold, "cold_start_median_s": statistics.median(cold),
                         "cold_start_min_s": min(cold),
                         "e2e": r.e2e, "environment": rep.environment})
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("environment", "e2e")}), flush=True)
            e = r.e2e
            print(f"  e2e full {e['full']['total_ms']:.2f} ms (decode {e['full']['decode_ms']:.2f}, preprocess "
                  f"{e['full']['preprocess_ms']:.2f}, infer {e['full']['infer_ms']:.2f}); reduced 1/{e['reduce_factor']} "
                  f"{e.get('reduced', {}).get('total_ms', float('nan')):.2f} ms, max error "
                  f"{e.get('reduced', {}).get('max_error', float('nan'))}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"results": rows}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
