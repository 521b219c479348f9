"""Quantization fidelity: plain int8 (TensorFlow's converter) against each keras-edge step, per model.

    python benchmarks/quant_fidelity.py --out benchmarks/results/quant_fidelity.json [--search-time 90]

Models are trained here to convergence on scikit-learn's digits at 48×48 (real data shipped in a
package; nothing downloaded) and converted by the real ``keras_edge.host.convert`` with the default
flow (int8 misses the budget → equalization, range setting, bias correction → int8-ptq, then the int8-selective
search; on the imbalanced model also ``qat=True``: fine-tuning with simulated int8 on top of int8-ptq). Per model: agreement with Keras (95% Wilson interval), KL(Keras‖variant), size and latency
(timed side by side in one run by the converter).

How the ≥5% case is made ("sepres48-uneven"): a separable-convolution residual CNN is trained, then
each SeparableConv2D's depthwise channels are scaled by factors drawn log-uniformly from
[1/SPREAD, SPREAD] with the pointwise weights divided by the same factors. The float model is
unchanged (max |Δp| ≈ 1e-6), but TFLite quantizes the tensor between depthwise and pointwise per
tensor, so wide channels starve narrow ones — the per-channel range imbalance Nagel et al. (2019)
report in trained MobileNetV2 depthwise layers. The same model without the imbalance
("sepres48") and a MobileNetV2-style network with ReLU6 ("mbv2s48", trained as is) show what the
steps do when int8 is already good.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from benchmarks.common import environment, to_jsonable  # noqa: E402

SIZE = 48
SPREADS = (8.0, 9.0, 10.0, 12.0)   # the smallest that makes plain int8 disagree on >= 5% of calibration images
BUDGET = 0.01


def digits(size: int = SIZE):
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import digits_images

    imgs, labels = digits_images(size)
    tr, ev = train_test_split(np.arange(len(labels)), test_size=0.3, stratify=labels, random_state=0)
    return imgs, labels, tr, ev


def separable_resnet(size: int = SIZE, classes: int = 10):
    """A small Xception-like CNN: separable convolutions, batch norm, residual adds."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 1), name="pixels")
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for f in (32, 64, 96):
        r = layers.BatchNormalization()(layers.Conv2D(f, 1, strides=2, padding="same", use_bias=False)(x))
        x = layers.SeparableConv2D(f, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.BatchNormalization()(layers.SeparableConv2D(f, 3, padding="same", use_bias=False)(x))
        x = layers.Add()([layers.MaxPooling2D(3, strides=2, padding="same")(x), r])
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(x))
    return keras.Model(inp, layers.Dense(classes, activation="softmax")(x), name="sepres")


def mobilenetv2_style(size: int = SIZE, classes: int = 10):
    """Inverted residual blocks (1×1 expand, 3×3 depthwise, 1×1 linear project) with BN and ReLU6."""
    import keras
    from keras import layers

    def block(x, out, stride, expand=4):
        c = x.shape[-1]
        h = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(c * expand, 1, use_bias=False)(x)))
        h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(h)
        h = layers.ReLU(6.0)(layers.BatchNormalization()(h))
        h = layers.BatchNormalization()(layers.Conv2D(out, 1, use_bias=False)(h))
        return layers.Add()([x, h]) if stride == 1 and c == out else h

    inp = keras.Input((size, size, 1), name="pixels")
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(x)))
    for out, stride in ((16, 1), (24, 2), (24, 1), (32, 2), (32, 1), (64, 2)):
        x = block(x, out, stride)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(classes, activation="softmax")(x), name="mbv2s")


def uneven(model, spread: float, seed: int = 0):
    """Function-preserving per-channel imbalance inside every SeparableConv2D (see the module docstring)."""
    from keras import layers

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):
            dw, pw, *rest = layer.get_weights()
            s = np.exp(rng.uniform(-np.log(spread), np.log(spread), dw.shape[2] * dw.shape[3])).astype(np.float32)
            layer.set_weights([dw * s.reshape(1, 1, dw.shape[2], dw.shape[3]), pw / s.reshape(1, 1, -1, 1), *rest])
    return model


def train(build, imgs, labels, tr, ev, epochs: int, log):
    import keras

    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x = imgs[..., None].astype(np.float32)
    t0 = time.perf_counter()
    from keras_edge.host.tfenv import captured_output

    with captured_output():
        hist = model.fit(x[tr], labels[tr], epochs=epochs, batch_size=32, verbose=0, validation_data=(x[ev], labels[ev]))
    acc = hist.history["val_accuracy"]
    log(f"  trained {model.name} for {epochs} epochs in {time.perf_counter() - t0:.0f}s: held-out accuracy "
        f"{acc[-1]:.4f} (last 3 epochs {', '.join(f'{a:.3f}' for a in acc[-3:])})")
    return model, [round(float(a), 4) for a in acc[-3:]]


def rows_of(report: dict, plain_ms: float | None) -> list[dict]:
    """Plain int8, each PTQ step, the kept int8-ptq and int8-selective, as table rows."""
    by = {v["name"]: v for v in report["variants"]}
    keys = ("agreement", "agreement_ci", "accuracy", "kl")

    def row(label, m, size, integer_only, lat=None):
        return {"step": label, **{k: m.get(k) for k in keys}, "bytes": size, "integer_only": integer_only,
                "latency_ms": lat, "latency_vs_int8": round(lat / plain_ms, 3) if lat and plain_ms else None}

    out = [row("fp32 (Keras reference)", by["fp32"]["metrics"], by["fp32"]["bytes"], False,
               by["fp32"]["metrics"].get("latency_ms"))]
    out.append(row("int8: TF converter, plain", by["int8"]["metrics"], by["int8"]["bytes"], True, plain_ms))
    for st in ((report.get("ptq") or {}).get("steps") or [])[1:]:
        if st.get("applied"):
            out.append(row(f"int8 + {st['step']} (cumulative)", st, st.get("bytes"), True))
        elif st.get("agreement") is not None:
            out.append(row(f"int8 + {st['step']}: not used ({st.get('why')})", st, st.get("bytes"), True))
    for name, integer_only in (("int8-ptq", True), ("int8-selective", False)):
        if name in by and by[name]["status"] == "ok":
            m = by[name]["metrics"]
            out.append(row(f"{name} (kept variant)", m, by[name]["bytes"], integer_only, m.get("latency_ms")))
    return out


def target(rows: list[dict], search: dict | None) -> dict:
    plain = next(r for r in rows if r["step"].startswith("int8: TF"))
    ints = [r for r in rows if r["integer_only"] and r["latency_ms"] and r is not plain]
    best = min(ints, key=lambda r: (1 - r["agreement"], r["kl"]), default=None)
    plain_dis = 1 - plain["agreement"]
    res = {"plain_int8_disagreement": round(plain_dis, 6), "applies": plain_dis >= 0.05}
    if best:
        res.update(best_integer_only=best["step"], best_disagreement=round(1 - best["agreement"], 6),
                   disagreement_ratio=round((1 - best["agreement"]) / plain_dis, 3) if plain_dis else None,
                   latency_vs_int8=best["latency_vs_int8"])
        res["met"] = bool(res["applies"] and (1 - best["agreement"]) <= plain_dis / 2 and (best["latency_vs_int8"] or 9) <= 1.3)
    if search:
        res["search_seconds"] = search.get("seconds")
        res["search_time_limit"] = search.get("time_limit")
        res["search_within_limit"] = (search.get("seconds") or 0) <= (search.get("time_limit") or 0)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--search-time", type=float, default=90.0)
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--reuse", action="store_true", help="load the models trained by the previous run (for iterating)")
    ap.add_argument("--work", type=Path, default=ROOT.parent / "build" / "bench" / "quant")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.demo import write_image_folder
    from keras_edge.host.tfenv import import_tf

    import_tf()
    t0 = time.perf_counter()
    imgs, labels, tr, ev = digits()
    names = [str(i) for i in range(10)]
    calib, evald = args.work / "data" / "train", args.work / "data" / "eval"
    if not evald.is_dir():
        write_image_folder(calib, imgs[tr], labels[tr], names)
        write_image_folder(evald, imgs[ev], labels[ev], names)
    if args.reuse and (args.work / "mbv2s48.keras").is_file():
        import keras

        sep, mb = keras.models.load_model(args.work / "sepres48.keras"), keras.models.load_model(args.work / "mbv2s48.keras")
        sep_acc = mb_acc = None
    else:
        sep, sep_acc = train(separable_resnet, imgs, labels, tr, ev, args.epochs, log)
        mb, mb_acc = train(mobilenetv2_style, imgs, labels, tr, ev, args.epochs, log)
    x_ev = imgs[ev][..., None].astype(np.float32)
    p0 = sep.predict(x_ev, verbose=0)
    sep.save(args.work / "sepres48.keras")
    spread, calib_dis = pick_spread(args.work / "sepres48.keras", imgs[tr][..., None].astype(np.float32), log)
    uneven(sep, spread)
    change = float(np.abs(sep.predict(x_ev, verbose=0) - p0).max())
    sep.save(args.work / "sepres48-uneven.keras")
    mb.save(args.work / "mbv2s48.keras")
    models = {"sepres48-uneven": (sep_acc, change), "sepres48": (sep_acc, 0.0), "mbv2s48": (mb_acc, 0.0)}
    results = {}
    for name, (acc, change) in models.items():
        log(f"{name}: converting (default flow, budget {BUDGET:.0%}, search limit {args.search_time:.0f}s)")
        t1 = time.perf_counter()
        res = convert(ConvertConfig(model=args.work / f"{name}.keras", out=args.work / "bundles" / name, calib=calib,
                                    eval=evald, variants=("fp32", "int8"), max_accuracy_drop=BUDGET,
                                    search_time=args.search_time, qat_always=name == "sepres48-uneven",
                                    qat_epochs=args.qat_epochs), log=lambda s: log(f"  {s}"))
        report = res.report.to_dict()
        plain_ms = next(v for v in report["variants"] if v["name"] == "int8")["metrics"].get("latency_ms")
        rows = rows_of(report, plain_ms)
        results[name] = {"keras_accuracy": report["keras"]["accuracy"], "val_accuracy_last_epochs": acc,
                         "eval_images": report["keras"]["eval_samples"], "calib_images": report["keras"]["calib_samples"],
                         "reparametrized_float_max_change": change, "convert_s": round(time.perf_counter() - t1, 1),
                         "rows": rows, "ptq": report.get("ptq"), "search": _search(report.get("selective")),
                         "target": target(rows, report.get("selective")), "default": report["default"]}
        if not report.get("ptq"):   # int8 met the budget, so convert ran no step: measure them anyway
            results[name]["steps_anyway"] = steps_anyway(args.work / f"{name}.keras", calib, evald, plain_ms, log)
        for r in rows:
            log(f"  {r['step']:40s} agree {r['agreement'] * 100:6.2f}%  KL {r['kl']:.2e}  "
                f"{(r['bytes'] or 0) / 1024:7.1f} KiB  {r['latency_ms'] or 0:.3f} ms")
    log("sepres48-uneven: the int8-selective search alone (no post-training steps), limit "
        f"{args.search_time:.0f}s")
    res = convert(ConvertConfig(model=args.work / "sepres48-uneven.keras", out=args.work / "bundles" / "search-only",
                                calib=calib, eval=evald, variants=("fp32", "int8"), max_accuracy_drop=BUDGET,
                                search_time=args.search_time, ptq=False), log=lambda s: log(f"  {s}"))
    report = res.report.to_dict()
    plain_ms = next(v for v in report["variants"] if v["name"] == "int8")["metrics"].get("latency_ms")
    results["sepres48-uneven"]["search_only"] = {"rows": rows_of(report, plain_ms), "search": _search(report.get("selective"))}
    results["sepres48-uneven"]["imbalance"] = {"spread": spread, "plain_int8_calibration_disagreement": calib_dis}
    try:
        results["sepres48-uneven"]["int16_mixed"] = int16_study(args.work / "sepres48-uneven.keras", calib, evald, log)
    except ImportError as e:
        results["sepres48-uneven"]["int16_mixed"] = {"skipped": f"ai-edge-quantizer is not installed ({e})"}
    results["mobilenetv2-0.35-96 (weights=None: latency only)"] = latency_only(args.work, calib, log)
    out = {"environment": environment(), "budget": BUDGET, "size": SIZE, "epochs": args.epochs,
           "wall_s": round(time.perf_counter() - t0, 1), "models": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(to_jsonable(out), indent=2) + "\n")
    return 0


def _tf_int8(model, x_calib: np.ndarray) -> bytes:
    from keras_edge.host.tflite.variants import ConvertInputs, IoType, convert

    return convert(model, "int8", ConvertInputs([x_calib[:200]], IoType.UINT8))[0]


def _engine_outputs(blob: bytes, x: np.ndarray, tmp: Path) -> np.ndarray:
    from keras_edge.host.convert import evaluate as E

    tmp.write_bytes(blob)
    return E.predict(E.load_tflite(tmp), [x])[0]


def pick_spread(path: Path, x_calib: np.ndarray, log) -> tuple[float, float]:
    """The smallest imbalance in SPREADS at which plain int8 disagrees with Keras on >= 5% of the
    calibration images (chosen on calibration images, never on the evaluation set)."""
    import keras

    dis = 0.0
    for spread in SPREADS:
        model = uneven(keras.models.load_model(path), spread)
        ref = model.predict(x_calib, verbose=0)
        y = _engine_outputs(_tf_int8(model, x_calib), x_calib, path.with_suffix(".probe.tflite"))
        dis = float(np.mean(y.argmax(1) != ref.argmax(1)))
        log(f"  imbalance spread {spread:g}: plain int8 disagrees on {dis:.1%} of calibration images")
        if dis >= 0.05:
            return spread, round(dis, 4)
    return SPREADS[-1], round(dis, 4)


def _load_split(calib: Path, evald: Path):
    from keras_edge.calibration.dataset import load_labeled
    from keras_edge.device.inputs.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_preset("raw", SIZE, SIZE, 1)
    return load_labeled(calib, spec, limit=200), load_labeled(evald, spec)


def _measure(blobs: dict[str, bytes], keras_out: np.ndarray, x: np.ndarray, y: np.ndarray, tmp: Path,
             plain: str) -> dict[str, dict]:
    """Fidelity of each model and its latency, timed side by side (interleaved) in this run."""
    from keras_edge.host.convert import evaluate as E

    engines, out = {}, {}
    for name, blob in blobs.items():
        path = tmp / f"{name}.tflite"
        path.write_bytes(blob)
        engines[name] = E.load_tflite(path)
        m = E.compare(E.predict(engines[name], [x]), [keras_out], y, True)
        out[name] = {k: m.get(k) for k in ("agreement", "agreement_ci", "accuracy", "kl")} | {"bytes": len(blob)}
    times = E.side_by_side(engines, [x], rounds=12, per_round=5)
    for name in blobs:
        out[name]["latency_ms"] = round(times[name][0], 4)
        out[name]["latency_vs_int8"] = round(times[name][0] / times[plain][0], 3)
    return out


def steps_anyway(path: Path, calib: Path, evald: Path, plain_ms, log) -> dict:
    """The post-training steps applied even though int8 met the budget: do they cost anything?"""
    import keras

    from keras_edge.host.tflite import ptq

    cal, ev = _load_split(calib, evald)
    model = keras.models.load_model(path)
    eq = ptq.equalize(model, cal.x)
    clip = ptq.clip_ranges(eq.model, cal.x)
    bc = ptq.bias_correct(eq.model, cal.x)
    blobs = {"int8": _tf_int8(model, cal.x), "int8+equalization": _tf_int8(eq.model, cal.x),
             "int8+equalization+range setting (not used by convert: adds ops)": _tf_int8(clip.model, cal.x),
             "int8+equalization+bias correction": _tf_int8(bc.model, cal.x)}
    res = _measure(blobs, model.predict(ev.x, verbose=0), ev.x, ev.y, path.parent, "int8")
    log("  steps anyway: " + "; ".join(f"{k}: agree {v['agreement']:.2%}, KL {v['kl']:.2e}" for k, v in res.items()))
    return {"equalization_applied": eq.applied, "range_setting_applied": clip.applied,
            "bias_correction_applied": bc.applied, "rows": res}


def int16_study(path: Path, calib: Path, evald: Path, log) -> dict:
    """Google's ai-edge-quantizer on the fp32 model: its own int8 (a8w8), 16-bit activations in the most
    sensitive separable layer only, and 16-bit activations everywhere; against the TF converter's int8."""
    import keras
    from ai_edge_quantizer import quantizer as aq

    from keras_edge.host.tflite.variants import ConvertInputs, convert

    cal, ev = _load_split(calib, evald)
    model = keras.models.load_model(path)
    fp32 = convert(model, "fp32", ConvertInputs([cal.x]))[0]

    def aeq(a16: list[str]) -> bytes:
        from keras_edge.host.tfenv import captured_output

        with captured_output():
            q = aq.Quantizer(fp32)
            q.add_static_config(".*", "*", 8, 8)
            for rx in a16:
                q.add_static_config(rx, "*", 16, 8)
            sig = "serving_default"
            from ai_edge_litert.interpreter import Interpreter

            inp = Interpreter(model_content=fp32).get_signature_list()[sig]["inputs"][0]
            calib_res = q.calibrate({sig: [{inp: cal.x[i:i + 1]} for i in range(len(cal.x))]})
            return bytes(q.quantize(calib_res, enable_progress_report=False).quantized_model)

    blobs = {"int8 (TF converter)": _tf_int8(model, cal.x), "aeq a8w8": aeq([]),
             "aeq a16w8 in the first separable layer": aeq(["separable_conv2d_1/"]),
             "aeq a16w8 in every separable layer": aeq(["separable_conv2d"]), "aeq a16w8 everywhere": aeq([".*"])}
    res = _measure(blobs, model.predict(ev.x, verbose=0), ev.x, ev.y, path.parent, "int8 (TF converter)")
    log("  int16 study: " + "; ".join(f"{k}: agree {v['agreement']:.2%}, {v['latency_vs_int8']:.1f}x" for k, v in res.items()))
    return {"rows": res, "note": "16-bit activations run on LiteRT's reference kernels (XNNPACK has no int16x8), "
                                 "so a single 16-bit layer costs far more than the 1.3x latency budget"}


def latency_only(work: Path, calib: Path, log) -> dict:
    """keras.applications MobileNetV2 (alpha 0.35, 96x96 gray, weights=None: seeded random weights, accuracy
    meaningless): does equalization + bias correction change int8 latency on a real architecture?"""
    import keras

    from keras_edge.host.tflite import ptq

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=0.35, input_shape=(96, 96, 1), weights=None, classes=10)
    from keras_edge.calibration.dataset import load_labeled
    from keras_edge.device.inputs.preprocess import PreprocessSpec

    cal = load_labeled(calib, PreprocessSpec.from_preset("raw", 96, 96, 1), limit=64)
    x = cal.x / 127.5 - 1.0
    eq = ptq.equalize(model, x)
    bc = ptq.bias_correct(eq.model, x)
    clip = ptq.clip_ranges(bc.model, x)
    blobs = {"int8": _tf_int8(model, x), "int8+equalization+bias correction (int8-ptq's steps)": _tf_int8(bc.model, x),
             "… + range setting (not used by convert: adds ops)": _tf_int8(clip.model, x)}
    res = _measure(blobs, model.predict(x, verbose=0), x, None, work, "int8")
    log("  mobilenetv2 latency: " + "; ".join(f"{k}: {v['latency_ms']:.3f} ms" for k, v in res.items()))
    return {"equalization": {k: v for k, v in eq.detail.items() if k != "equalized"}, "rows": res,
            "note": "weights=None: agreement/KL are of a random network and mean nothing; latency only"}


def _search(sel: dict | None) -> dict | None:
    if not sel:
        return None
    return {k: sel.get(k) for k in ("fits", "seconds", "time_limit", "stopped", "metric", "baseline", "trials", "pareto")}


if __name__ == "__main__":
    sys.exit(main())
