"""Architecture sweep: `keras-edge convert --variants fp32,fp16,int8` beside TensorFlow's converter called directly.

    python -m benchmarks.sweep --out benchmarks/results/sweep.json [--size 96] [--minutes 20] [--only a,b]
                               [--memory-check]

Each architecture (``archs.py``: keras.applications with weights=None and blocks written out; random weights,
so this measures speed and coverage only, never accuracy) runs in its own process so that its peak RSS is its
own (``wait4``'s ru_maxrss). keras-edge converts from the saved ``.keras`` file with int8-ptq and int8-selective
off (they need a meaningful accuracy budget) on 16 calibration and 16 evaluation photos. TensorFlow's converter
is then asked directly for full integer int8 with the same calibration inputs: whether it converts, which ops it
silently leaves in float, and its latency timed side by side with keras-edge's fp32 and int8 files.
``--memory-check`` converts the DeepLabV3-ResNet50-like model (~26M params, 224×224, ``--task segmentation``)
with convert's defaults (all default variants, int8-ptq, int8-selective, 200 calibration images) and records its
peak RSS. The sweep stops starting architectures after ``--minutes`` and says which did not run; ``--only`` runs
some and keeps the others' previous results (the recorded wall time adds up the parts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from .common import WORK, calibration_folder, environment, photos, to_jsonable, write_json  # noqa: E402

# the LayerNorm/attention models first: they are why the sweep exists, and a bounded run may not reach the last
SWEEP = ("vit_block", "convnext_block", "convnexttiny", "hed", "deeplabv3_small", "mobilenetv3small", "mobilenetv3large",
         "efficientnetv2b0", "regnetx_like", "regnety_like")
MEMORY_MODEL, MEMORY_SIZE, MEMORY_CALIB = "deeplabv3_resnet50", 224, 200


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def many_photos(root: Path, n: int) -> Path:
    """``n`` JPEG crops of scikit-image's photos (random boxes, seeded), for a default-size calibration set."""
    import cv2
    import numpy as np

    if root.is_dir() and len(list(root.glob("*.jpg"))) == n:
        return root
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    imgs = photos()
    for i in range(n):
        img = imgs[i % len(imgs)]
        h, w = img.shape[:2]
        s = rng.uniform(0.4, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        crop = crop[:, ::-1] if i % 2 else crop
        cv2.imwrite(str(root / f"crop_{i:03d}.jpg"), np.ascontiguousarray(crop[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return root


# ---------------------------------------------------------------- one architecture (a child process)

def _tf_int8(model, x) -> tuple[bytes | None, str]:
    """TensorFlow's converter asked for full integer int8 directly, as its documentation shows."""
    import numpy as np
    import tensorflow as tf

    from keras_edge.host.tfenv import captured_output

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([np.ascontiguousarray(x[i:i + 1], np.float32)] for i in range(len(x)))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.uint8
    c.inference_output_type = tf.uint8
    try:
        with captured_output():
            return c.convert(), ""
    except Exception as e:  # noqa: BLE001 - the converter raises many kinds
        return None, (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def one(name: str, size: int, memory: bool) -> dict[str, Any]:
    """Build, save, convert with keras-edge, convert with TF directly, time side by side."""
    import keras
    import numpy as np

    from keras_edge.calibration.dataset import calibration_sets
    from keras_edge.device.contract import bundle as B
    from keras_edge.device.outputs import TaskOptions
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.tflite import evaluate as E
    from keras_edge.host.tflite.fidelity import cosine_snr
    from keras_edge.host.tflite.variants import float_ops

    from .archs import ARCHS

    arch = ARCHS[name]
    work = WORK / "sweep"
    work.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    model = arch.build(size)
    path = work / f"{name}-{size}.keras"
    model.save(path)
    calib = many_photos(WORK / "calib240", 240) if memory else calibration_folder(WORK / "calib")
    opts = dict(calib_samples=MEMORY_CALIB, eval_samples=40) if memory else dict(
        variants=("fp32", "fp16", "int8"), calib_samples=16, eval_samples=16, ptq=False, selective=False)
    cfg = ConvertConfig(model=path, out=work / "bundles" / f"{name}-{size}", calib=calib, name=name,
                        task_options=TaskOptions(task=arch.task) if arch.task else TaskOptions(), **opts)
    t0 = time.perf_counter()
    lines: list[str] = []
    res = convert(cfg, log=lambda s: (lines.append(s), log(f"    {s}")))
    wall = time.perf_counter() - t0
    m = B.read_manifest(res.bundle)
    variants = {}
    for v in m.variants:
        mt = v.metrics or {}
        variants[v.name] = {"status": str(v.status), "reason": v.reason, "bytes": v.bytes,
                            "latency_ms": mt.get("latency_ms"), "float_ops": mt.get("float_ops"),
                            "rewrites": mt.get("rewrites"), "snr_db": mt.get("snr_db")}
    out: dict[str, Any] = {"name": name, "size": size, "params": int(model.count_params()), "note": arch.note,
                           "task": arch.task, "convert_s": round(wall, 1), "keras_edge": variants,
                           "default": m.default, "integer_route": res.report.integer,
                           "notes": list(res.report.notes), "ptq": res.report.ptq, "selective": res.report.selective}
    if memory:
        out["log"] = lines
        return out
    # TensorFlow's converter directly, on the calibration inputs keras-edge used (the same seeded split)
    x = calibration_sets(calib, m.preprocess, calib_samples=16, eval_samples=16, seed=0).calib.x
    blob, err = _tf_int8(keras.models.load_model(path), x)
    tf_entry: dict[str, Any] = {"converts": blob is not None, "error": err}
    models = {}
    if blob is not None:
        tf_path = work / f"{name}-{size}.tf-int8.tflite"
        tf_path.write_bytes(blob)
        tf_entry.update(bytes=len(blob), float_ops=float_ops(blob))
        models["tf-int8"] = E.load_tflite(tf_path)
        ref = np.load(res.bundle / B.REFERENCE)
        got = E.predict(models["tf-int8"], [ref["input_0"]])[0]
        tf_entry["snr_db"] = round(cosine_snr(ref["output_0"], got)[1], 2)
    for vname in ("fp32", "int8", "int8-mixed"):
        v = next((v for v in m.variants if v.name == vname and v.status is B.VariantStatus.OK), None)
        if v is not None:
            models[f"ke-{vname}"] = E.load_tflite(res.bundle / v.file)
    times = E.side_by_side(models, [x[:1]], rounds=8, per_round=5) if models else {}
    out["tf"] = tf_entry
    out["side_by_side_ms"] = {k: round(p50, 4) for k, (p50, _) in times.items()}
    return out


def _vm_hwm_kib() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


# ---------------------------------------------------------------- the sweep (the parent)

def _child(name: str, size: int, memory: bool, timeout: float) -> dict[str, Any]:
    """Run one architecture in its own process; its result, wall time and peak RSS (ru_maxrss of that child)."""
    out = WORK / "sweep" / f"{name}-{size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "benchmarks.sweep", "--one", name, "--size", str(size), "--out", str(out)]
    cmd += ["--memory-check"] if memory else []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent)
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            _, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)   # reaped here: Popen must not wait for it again
    wall = time.perf_counter() - t0
    peak = usage.ru_maxrss * 1024 if usage else None   # Linux: KiB
    if out.is_file() and proc.returncode == 0:
        entry = json.loads(out.read_text())
    else:
        why = f"did not finish within {timeout:.0f}s" if wall > timeout else f"exited {proc.returncode}"
        entry = {"name": name, "size": size, "error": why}
    entry.update(wall_s=round(wall, 1), peak_rss_bytes=peak)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", type=int, default=96, help="input size of the sweep's models (square)")
    ap.add_argument("--minutes", type=float, default=20.0, help="start no architecture after this many minutes")
    ap.add_argument("--per-model", type=float, default=600.0, help="seconds one architecture may take")
    ap.add_argument("--only", default=None, help="comma-separated architectures")
    ap.add_argument("--memory-check", action="store_true",
                    help=f"also convert {MEMORY_MODEL} at {MEMORY_SIZE} with convert's defaults and record its peak RSS")
    ap.add_argument("--memory-only", action="store_true", help="only the memory check; the sweep's results are kept")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)   # the child's entry
    args = ap.parse_args(argv)
    if args.one:
        result = one(args.one, args.size, args.memory_check)
        result["vm_hwm_bytes"] = (_vm_hwm_kib() or 0) * 1024
        args.out.write_text(json.dumps(to_jsonable(result), indent=2))
        return 0
    names = [] if args.memory_only else [s.strip() for s in args.only.split(",")] if args.only else list(SWEEP)
    t0 = time.perf_counter()
    entries, skipped = [], []
    for name in names:
        if time.perf_counter() - t0 > args.minutes * 60:
            skipped.append(name)
            continue
        log(f"sweep: {name} at {args.size}x{args.size}")
        entries.append(_child(name, args.size, False, args.per_model))
        log(f"sweep: {name}: {entries[-1].get('error') or 'done'} in {entries[-1]['wall_s']:.0f}s")
    memory = None
    if args.memory_check or args.memory_only:
        log(f"sweep: memory check: {MEMORY_MODEL} at {MEMORY_SIZE}x{MEMORY_SIZE}, convert's defaults")
        memory = _child(MEMORY_MODEL, MEMORY_SIZE, True, 3 * 3600)
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = {k: previous.get(k) for k in ("environment", "size", "minutes", "wall_s", "architectures", "not_run")}
    if args.only:   # the architectures not named keep their previous results (a sweep finished in parts)
        ran = {e["name"] for e in entries} | set(skipped)
        entries = [e for e in previous.get("architectures") or [] if e["name"] not in ran] + entries
        entries.sort(key=lambda e: SWEEP.index(e["name"]) if e["name"] in SWEEP else len(SWEEP))
        skipped = sorted(set(skipped) | (set(previous.get("not_run") or []) - ran))
    wall = round(time.perf_counter() - t0, 1) + (float(previous.get("wall_s") or 0) if args.only else 0)
    swept = {"environment": environment(), "size": args.size, "minutes": args.minutes,
             "wall_s": wall, "architectures": entries, "not_run": skipped}
    write_json(args.out, {**(kept if args.memory_only else swept), "memory_check": memory or previous.get("memory_check"),
                          "weights": "random (weights=None): speed and coverage only, never accuracy"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
