"""Pruning benchmark: what channel and magnitude pruning buy in int8 TFLite, measured side by side.

    python benchmarks/bench_pruning.py [--out benchmarks/results/pruning.json] [--threads 1,2] [--skip-mobilenet]

1. The digits demo CNN (host/demo.py's model, trained here to convergence on scikit-learn's digits)
   against
   - channel pruning at 50% (fine-tuned with distillation from the unpruned model, and without),
   - magnitude pruning at 50% and 80% (fine-tuned),
   all converted to full-integer int8 by the project's converter (tf.lite.TFLiteConverter): int8
   accuracy on the held-out 20%, gzip -9 size and latency in LiteRT. An unpruned control gets the
   same fine-tuning epochs, so the accuracy drop is also given against an equally trained model.
2. keras.applications.MobileNetV2 (alpha 1.0, 224×224, weights=None) channel-pruned by 30%
   against the unpruned one, both int8: latency only (random weights have no accuracy to lose),
   with the kept channels rounded to multiples of 1 (exact), 8 (the default) and 16.

Latency: one ai_edge_litert interpreter per model, XNNPACK, at 1 thread and at every usable core (as
benchmarks/run.py); warm-up, then rounds that run every model in turn (rotating the order) so that
load from other processes hits all models alike. Ratios are unpruned median / pruned median from
the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "pruning.json"
MULTIPLES = (1, 8, 16)  # channel_multiple values compared on MobileNetV2


def say(msg: str) -> None:
    print(f"[bench_pruning] {msg}", file=sys.stderr, flush=True)


def int8_bytes(model: Any, calib: np.ndarray) -> bytes:
    from keras_edge.host.tflite.variants import ConvertInputs, IoType, convert

    data, _ = convert(model, "int8", ConvertInputs(calib=[calib], io=IoType.INT8))
    return data


def interpreter(data: bytes, threads: int) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=threads)
    it.allocate_tensors()
    return it


def predict_int8(data: bytes, x: np.ndarray, threads: int) -> np.ndarray:
    from keras_edge.device.inputs.preprocess import dequantize, quantize

    it = interpreter(data, threads)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for xi in x:
        it.set_tensor(inp["index"], quantize(xi[None], inp["dtype"], *inp["quantization"]))
        it.invoke()
        res.append(dequantize(it.get_tensor(out["index"]), *out["quantization"]))
    return np.concatenate(res)


def latencies(models: dict[str, bytes], sample: np.ndarray, threads: int, rounds: int, runs: int,
              warmup: int = 20) -> dict[str, list[int]]:
    """Per-invoke times (ns) of every model, interleaved round by round."""
    from keras_edge.device.inputs.preprocess import quantize

    its = {}
    for name, data in models.items():
        it = interpreter(data, threads)
        inp = it.get_input_details()[0]
        it.set_tensor(inp["index"], quantize(sample[None], inp["dtype"], *inp["quantization"]))
        for _ in range(warmup):
            it.invoke()
        its[name] = it
    times: dict[str, list[int]] = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            it, t = its[name], times[name]
            for _ in range(runs):
                t0 = time.perf_counter_ns()
                it.invoke()
                t.append(time.perf_counter_ns() - t0)
    return times


def stats(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, np.float64) / 1e6
    return {"median_ms": round(float(np.median(a)), 4), "p90_ms": round(float(np.percentile(a, 90)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4), "n": int(a.size)}


def timed(models: dict[str, bytes], sample: np.ndarray, args: argparse.Namespace, runs: int,
          warmup: int = 20) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {threads: latency stats}} for every thread count asked for."""
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
    for t in args.threads:
        for name, ns in latencies(models, sample, t, args.rounds, runs, warmup).items():
            out[name][str(t)] = stats(ns)
    return out


def speedup(lat: dict[str, dict[str, dict[str, float]]], name: str) -> dict[str, float]:
    """Unpruned median / pruned median, per thread count."""
    return {t: round(lat["unpruned"][t]["median_ms"] / v["median_ms"], 3) for t, v in lat[name].items()}


def digits_section(args: argparse.Namespace) -> dict[str, Any]:
    import gzip

    import keras
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import build_model, digits_images
    from keras_edge.host.prune.distill import fit
    from keras_edge.host.prune import prune_model
    from keras_edge.host.prune.graph import clone

    imgs, labels = digits_images()
    x = imgs[..., None].astype(np.float32)  # the demo model takes raw 0..255 pixels (leading Rescaling)
    tr, ev = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    keras.utils.set_random_seed(0)
    base = build_model()
    base.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    # the demo's recipe, trained to convergence so that fine-tuning the pruned models is not extra training
    say(f"training the digits demo CNN ({args.base_epochs} epochs) …")
    base.fit(x[tr], labels[tr], epochs=args.base_epochs, batch_size=32, verbose=0)

    results: dict[str, Any] = {"unpruned": {"keras": base}}
    # A control gets the same fine-tuning epochs without pruning: the drop is reported against both.
    say(f"unpruned control: fine-tuning {args.epochs} epochs …")
    control = clone(base)
    fit(control, x[tr], labels[tr], epochs=args.epochs, verbose=0)
    results["unpruned-finetuned"] = {"keras": control}
    fine = dict(x=x[tr], y=labels[tr], epochs=args.epochs, x_val=x[ev], y_val=labels[ev], verbose=0)
    plans = {"channels-0.5": ("channels", 0.5, {"distill": True}),
             "channels-0.5-no-distill": ("channels", 0.5, {}),
             "magnitude-0.5": ("magnitude", 0.5, {}), "magnitude-0.8": ("magnitude", 0.8, {})}
    for name, (method, sparsity, extra) in plans.items():
        say(f"{name}: pruning and fine-tuning {args.epochs} epochs …")
        r = prune_model(base, method, sparsity, **fine, **extra)
        results[name] = {"keras": r.model, "prune": r.to_dict()}
    calib = x[tr][:200]
    for name, row in results.items():
        say(f"{name}: int8 conversion and evaluation …")
        data = int8_bytes(row["keras"], calib)
        row["bytes"] = data
        row["int8_accuracy"] = float(np.mean(predict_int8(data, x[ev], 1).argmax(1) == labels[ev]))
        row["keras_accuracy"] = float(np.mean(row["keras"].predict(x[ev], verbose=0).argmax(1) == labels[ev]))
        row["size"] = len(data)
        row["gzip_size"] = len(gzip.compress(data, 9, mtime=0))
    say("digits: latency …")
    lat = timed({k: v["bytes"] for k, v in results.items()}, x[ev][0], args, args.runs)
    ref, ctl = results["unpruned"], results["unpruned-finetuned"]
    out: dict[str, Any] = {"eval_images": int(len(ev)), "variants": {}}
    for name, row in results.items():
        entry = {"int8_accuracy": row["int8_accuracy"], "keras_accuracy": row["keras_accuracy"],
                 "tflite_bytes": row["size"], "gzip_bytes": row["gzip_size"], "latency": lat[name]}
        if name.startswith(("channels", "magnitude")):
            entry.update({
                "accuracy_drop_pp": round(100 * (ref["int8_accuracy"] - row["int8_accuracy"]), 3),
                "accuracy_drop_vs_control_pp": round(100 * (ctl["int8_accuracy"] - row["int8_accuracy"]), 3),
                "speedup": speedup(lat, name),
                "gzip_ratio": round(row["gzip_size"] / ref["gzip_size"], 4),
                "size_ratio": round(row["size"] / ref["size"], 4),
                "prune": {k: row["prune"][k] for k in ("achieved", "params_before", "params_after", "nonzero_after",
                                                       "flops_before", "flops_after", "epochs", "layers")}})
        out["variants"][name] = entry
    return out


def mobilenet_section(args: argparse.Namespace) -> dict[str, Any]:
    import keras

    from tests.support import digits_rgb, settle_batchnorm
    from keras_edge.host.prune import prune_model

    keras.utils.set_random_seed(0)
    m = keras.applications.MobileNetV2(input_shape=(224, 224, 3), alpha=1.0, weights=None)
    x = digits_rgb(224, 48)
    settle_batchnorm(m, x[:32])
    say("MobileNetV2 224: channel pruning 30% (kept channels rounded to multiples of 1, 8, 16) …")
    pruned = {m_: prune_model(m, "channels", 0.3, epochs=0, channel_multiple=m_) for m_ in MULTIPLES}
    say("MobileNetV2 224: int8 conversion (four models, a few minutes) …")
    models = {"unpruned": int8_bytes(m, x[:32])}
    models.update({f"channels-0.3-x{m_}": int8_bytes(r.model, x[:32]) for m_, r in pruned.items()})
    say("MobileNetV2 224: latency …")
    lat = timed(models, x[40], args, max(5, args.runs // 2), warmup=10)
    variants = {}
    for m_, r in pruned.items():
        name = f"channels-0.3-x{m_}"
        variants[name] = {"channel_multiple": m_, "achieved": round(r.achieved, 4), "latency": lat[name],
                          "speedup": speedup(lat, name),
                          "params": r.params_after, "flops": r.flops_after, "tflite_bytes": len(models[name])}
    return {"input": [224, 224, 3], "alpha": 1.0, "unpruned": {
                "latency": lat["unpruned"], "params": pruned[1].params_before, "flops": pruned[1].flops_before,
                "tflite_bytes": len(models["unpruned"])},
            "variants": variants, "skipped": [s.to_dict() for s in pruned[1].skipped]}


def environment(threads: list[int]) -> dict[str, Any]:
    import ai_edge_litert
    import keras
    import tensorflow as tf

    from keras_edge.device.engine.sysinfo import environment as env

    e = env(runtime=f"ai_edge_litert {getattr(ai_edge_litert, '__version__', '?')}", backend="xnnpack")
    e.update({"threads": threads, "tensorflow": tf.__version__, "keras": keras.__version__,
              "loadavg": list(os.getloadavg())})
    return e


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", default=None,
                    help="comma-separated LiteRT thread counts (default: 1 and every usable core)")
    ap.add_argument("--base-epochs", type=int, default=40, help="training epochs of the unpruned digits model")
    ap.add_argument("--epochs", type=int, default=10, help="fine-tuning epochs of each pruned digits model")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--runs", type=int, default=40, help="timed invokes per model per round")
    ap.add_argument("--skip-mobilenet", action="store_true")
    args = ap.parse_args(argv)
    from keras_edge.device.engine.runtime import default_threads

    # 1 thread shows the kernels' own gain; every usable core is what benchmarks/run.py compares
    args.threads = (sorted({1, default_threads()}) if args.threads is None
                    else [int(t) for t in args.threads.split(",")])

    from keras_edge.host.tfenv import import_tf

    import_tf()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"benchmark": "pruning", "environment": environment(args.threads),
                              "settings": {k: v for k, v in vars(args).items() if k != "out"}}
    result["digits"] = digits_section(args)
    if not args.skip_mobilenet:
        result["mobilenet_v2_224"] = mobilenet_section(args)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(result, f, indent=2, default=str)
    os.replace(tmp, args.out)
    say(f"wrote {args.out}")
    keys = ("int8_accuracy", "speedup", "accuracy_drop_pp", "accuracy_drop_vs_control_pp", "gzip_ratio")
    for name, v in result["digits"]["variants"].items():
        print(f"digits {name:<24} " + "  ".join(f"{k}={v.get(k)}" for k in keys))
    if "mobilenet_v2_224" in result:
        for name, v in result["mobilenet_v2_224"]["variants"].items():
            print(f"mobilenet_v2_224 {name:<18} speedup={v['speedup']}  achieved={v['achieved']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
