"""Coverage matrix: every keras.applications image architecture (weights=None, small input) and the Keras 3
blocks modern edge networks use, through fp32/fp16/int8 convert → run → verify, beside TensorFlow's converter
called directly on the same model (the peer).

    python -m benchmarks.coverage --out benchmarks/results/coverage.json [--budget-min 45] [--only NAME,...]

Each model runs in its own process (its memory is its own; a crash or a hang is that row's result), smallest
first, until the time budget is spent; rows not reached say so. Per row and variant: keras-edge's status (or the
one-line reason it refused), its fidelity to Keras (max abs error for fp32/fp16, top-1 agreement and KL for int8)
next to the peer's on the same evaluation inputs, whether the board's runner ran it (top-1 equal to the variant's
own on every evaluation image) and whether ``verify`` passed. Batch norm statistics are set from the calibration
crops (random weights otherwise give activations that vanish), inputs are crops of scikit-image's photographs
preprocessed the way each architecture documents.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

SIZE = 64
VARIANTS = ("fp32", "fp16", "int8")
# documented preprocessing (keras.applications.<family>.preprocess_input); "raw": the model rescales itself
PRESET = {"ConvNeXt": "raw", "EfficientNet": "raw", "MobileNetV3": "raw", "ResNet50": "caffe", "ResNet101": "caffe",
          "ResNet152": "caffe", "VGG": "caffe", "DenseNet": "torch"}
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
BLOCKS = ("block-attention", "block-convnext", "block-mbv3-se", "block-upsample")


def preset_of(name: str) -> str:
    if name.startswith("block-"):
        return "tf"
    for prefix, preset in PRESET.items():
        if name.startswith(prefix) and not name.startswith(("ResNet50V2", "ResNet101V2", "ResNet152V2")):
            return preset
    return "tf"


def architectures() -> list[str]:
    import inspect

    import keras

    return sorted(n for n, o in inspect.getmembers(keras.applications) if callable(o) and n[:1].isupper())


def build(name: str):
    import keras
    from keras import layers as L

    if not name.startswith("block-"):
        size = max(SIZE, MIN_SIZE.get(name, 0))
        return getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=10)
    inp = keras.Input((SIZE, SIZE, 3))
    if name == "block-attention":   # a tiny ViT: patches, pre-norm multi-head attention, GELU MLP
        x = L.Conv2D(32, 8, strides=8)(inp)
        x = L.Reshape((-1, 32))(x)
        for _ in range(2):
            h = L.LayerNormalization()(x)
            x = x + L.MultiHeadAttention(num_heads=4, key_dim=8)(h, h)
            h = L.LayerNormalization()(x)
            x = x + L.Dense(32)(L.Dense(64, activation="gelu")(h))
        x = L.GlobalAveragePooling1D()(L.LayerNormalization()(x))
    elif name == "block-convnext":   # depthwise 7x7, LayerNormalization, inverted GELU MLP, residual
        x = L.Conv2D(32, 4, strides=4)(inp)
        for _ in range(2):
            h = L.DepthwiseConv2D(7, padding="same")(x)
            h = L.LayerNormalization(epsilon=1e-6)(h)
            h = L.Dense(32)(L.Dense(128, activation="gelu")(h))
            x = x + h
        x = L.GlobalAveragePooling2D()(x)
    elif name == "block-mbv3-se":   # depthwise-separable, squeeze-excite, hard-swish
        x = L.Conv2D(16, 3, strides=2, padding="same")(inp)
        x = L.Activation("hard_swish")(L.BatchNormalization()(x))
        for filters in (24, 40):
            h = L.DepthwiseConv2D(3, strides=2, padding="same")(x)
            h = L.Activation("hard_swish")(L.BatchNormalization()(h))
            se = L.GlobalAveragePooling2D(keepdims=True)(h)
            se = L.Conv2D(8, 1, activation="relu")(se)
            se = L.Conv2D(h.shape[-1], 1, activation="hard_sigmoid")(se)
            h = L.Multiply()([h, se])
            h = L.SeparableConv2D(filters, 3, padding="same")(h)
            x = L.Activation("hard_swish")(L.BatchNormalization()(h))
        x = L.GlobalAveragePooling2D()(x)
    elif name == "block-upsample":   # encoder-decoder with bilinear upsampling, Resizing, transposed conv; dense out
        e1 = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
        e2 = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(e1)
        e3 = L.Conv2D(64, 3, strides=2, padding="same", activation="relu")(e2)
        d2 = L.Concatenate()([L.UpSampling2D(interpolation="bilinear")(e3), e2])
        d1 = L.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(d2)
        d1 = L.Resizing(SIZE, SIZE)(d1)
        out = L.Conv2D(4, 1, activation="softmax")(L.Concatenate()([d1, e1]))
        return keras.Model(inp, out, name="block_upsample")
    else:
        raise SystemExit(f"unknown block {name}")
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name=name.replace("-", "_"))


def _peer(model, mode: str, calib: np.ndarray) -> bytes:
    """TensorFlow's converter called directly, as its documentation shows."""
    import tensorflow as tf

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode in ("fp16", "int8"):
        c.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "fp16":
        c.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        c.representative_dataset = lambda: ([calib[i:i + 1]] for i in range(len(calib)))
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        c.inference_input_type = tf.uint8
        c.inference_output_type = tf.uint8
    return c.convert()


def _metrics(outs: np.ndarray, ref: np.ndarray, mode: str) -> dict[str, Any]:
    err = float(np.abs(outs - ref).max())
    a, b = outs.reshape(len(outs), -1, outs.shape[-1]), ref.reshape(len(ref), -1, ref.shape[-1])
    agree = float(np.mean(a.argmax(-1) == b.argmax(-1)))
    p, q = np.clip(b, 1e-7, 1), np.clip(a, 1e-7, 1)
    kl = float(np.mean(np.sum(p * np.log(p / q), axis=-1)))
    return {"max_abs_err": round(err, 6), "agreement": round(agree, 4), "kl": round(kl, 6)}


def one(name: str, work: Path) -> dict[str, Any]:
    """One row: build, convert with keras-edge and with the peer, run, verify."""
    import keras

    from keras_edge.api import open_bundle, verify
    from keras_edge.calibration.dataset import load_records, scan_folder
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions
    from keras_edge.host.tflite import evaluate as E
    from tests.field import zoo
    from tests.support import settle_batchnorm

    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = build(name)
    size = int(model.inputs[0].shape[1])
    calib = zoo.scene_crops(work / "calib", 48, size, seed=0)
    evald = zoo.scene_crops(work / "eval", 32, size, seed=1)
    preset = preset_of(name)
    from keras_edge.device.inputs.preprocess import PreprocessSpec

    spec = PreprocessSpec.from_preset(preset, size, size, 3)
    xc = load_records(scan_folder(calib).records, spec).x
    xe = load_records(scan_folder(evald).records, spec).x
    settle_batchnorm(model, xc)
    path = work / f"{name}.keras"
    model.save(path)
    ref = model.predict(xe, verbose=0)
    row: dict[str, Any] = {"model": name, "params": int(model.count_params()), "input": f"{size}x{size}x3",
                           "preset": preset, "commit": _commit(), "variants": {}}
    try:
        res = convert(ConvertConfig(model=path, out=work / "bundle", calib=calib, eval=evald, variants=VARIANTS,
                                    preprocess=PreprocessOptions(preset=preset), ptq=False, selective=False,
                                    max_accuracy_drop=0.99))
        manifest, bundle = res.manifest, work / "bundle"
        # the bundle's own preprocessing (convert may move the mean half a pixel step and fold it into the first
        # layer); Keras keeps the preset's
        xb = load_records(scan_folder(evald).records, manifest.preprocess).x
    except Exception as e:  # noqa: BLE001 - a refusal or failure is this row's result
        manifest, bundle = None, None
        row["convert_error"] = f"{type(e).__name__}: {getattr(e, 'what', None) or str(e).splitlines()[0][:300]}"
    ver = verify(str(bundle)) if bundle is not None else None
    for mode in VARIANTS:
        entry: dict[str, Any] = {}
        v = next((x for x in manifest.variants if x.name == mode), None) if manifest is not None else None
        if v is not None:
            entry["status"] = str(v.status)
            if v.status.value == "ok":
                eng = E.load_tflite(bundle / v.file)
                entry["keras_edge"] = _metrics(E.predict(eng, [xb])[0], ref, mode)
                with open_bundle(str(bundle), variant=mode) as r:   # the board's runner, image files in
                    tops = [r.run(str(p)).top for p in sorted(evald.glob("*.png"))[:8]]
                entry["run"] = "ok" if all(t for t in tops) or all(t is None for t in tops) else "no result"
                chk = next((c for c in ver.checks if c.variant == mode), None) if ver else None
                entry["verify"] = str(chk.verdict) if chk else "not checked"
                if chk is not None and str(chk.verdict) != "pass":
                    entry["verify_message"] = chk.message
                entry["bytes"] = v.bytes
            else:
                entry["reason"] = v.reason
        try:
            blob = _peer(model, mode, xc)
            p = work / f"peer-{mode}.tflite"
            p.write_bytes(blob)
            entry["peer"] = _metrics(E.predict(E.load_tflite(p), [xe])[0], ref, mode)
            if mode == "int8":   # TF keeps ops it cannot quantize in float without a word: say which
                from keras_edge.host.tflite.variants import float_ops

                entry["peer"]["float_ops"] = float_ops(blob)
        except Exception as e:  # noqa: BLE001
            entry["peer_error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        row["variants"][mode] = entry
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def _commit() -> str | None:
    """The clone's commit this row ran at (rows merged from several runs say which code made them)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT.parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-min", type=float, default=45.0, help="stop starting new rows after this many minutes")
    ap.add_argument("--only", default=None, help="comma-separated architecture or block names")
    ap.add_argument("--keep", type=Path, default=None,
                    help="an earlier coverage.json: its rows for models this run does not reach are kept")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--row-timeout", type=float, default=2400.0)
    args = ap.parse_args(argv)
    if args.one:
        with tempfile.TemporaryDirectory(prefix="ke-cov-") as tmp:
            row = one(args.one, Path(tmp))
        args.out.write_text(json.dumps(row) + "\n", encoding="utf-8")
        return 0
    from benchmarks.common import environment, to_jsonable

    names = [s for s in args.only.split(",")] if args.only else [*BLOCKS, *_by_size(architectures())]
    kept = {r["model"]: r for r in json.loads(args.keep.read_text())["rows"] if "variants" in r} if args.keep else {}
    names = [n for n in names if n not in kept]
    t0, rows = time.perf_counter(), list(kept.values())
    for name in names:
        if time.perf_counter() - t0 > args.budget_min * 60:
            rows.append({"model": name, "not_run": f"the time budget of {args.budget_min:g} min was spent"})
            continue
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            try:
                proc = subprocess.run([sys.executable, "-m", "benchmarks.coverage", "--out", f.name, "--one", name],
                                      cwd=ROOT.parent, capture_output=True, text=True, timeout=args.row_timeout)
                text = Path(f.name).read_text() if proc.returncode == 0 else ""
                row = json.loads(text) if text else {"model": name, "crashed": f"exit {proc.returncode}: " + (
                    proc.stderr.strip().splitlines() or ["no output"])[-1][:300]}
            except subprocess.TimeoutExpired:
                row = {"model": name, "crashed": f"did not finish in {args.row_timeout:g}s"}
        rows.append(row)
        print(f"coverage: {name}: " + (row.get("crashed") or row.get("convert_error") or ", ".join(
            f"{m} {e.get('status', '?')}" for m, e in row.get("variants", {}).items())), file=sys.stderr, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(to_jsonable({"environment": environment(), "rows": rows}), indent=1) + "\n")
    args.out.write_text(json.dumps(to_jsonable({"environment": environment(), "rows": rows,
                                                "seconds": round(time.perf_counter() - t0, 1)}), indent=1) + "\n")
    return 0


# parameter counts at 1000 classes (keras.applications' documentation), to run the small ones first
_PARAMS_M = {"MobileNetV3Small": 2.5, "MobileNet": 4.3, "MobileNetV2": 3.5, "MobileNetV3Large": 5.5, "NASNetMobile": 5.3,
             "EfficientNetB0": 5.3, "EfficientNetV2B0": 7.2, "EfficientNetB1": 7.9, "DenseNet121": 8.1,
             "EfficientNetV2B1": 8.2, "EfficientNetB2": 9.2, "EfficientNetV2B2": 10.2, "EfficientNetB3": 12.3,
             "DenseNet169": 14.3, "EfficientNetV2B3": 14.5, "EfficientNetB4": 19.5, "DenseNet201": 20.2,
             "Xception": 22.9, "InceptionV3": 23.9, "ResNet50": 25.6, "ResNet50V2": 25.6, "EfficientNetB5": 30.6,
             "ConvNeXtTiny": 28.6, "EfficientNetB6": 43.3, "ResNet101": 44.7, "ResNet101V2": 44.7, "ConvNeXtSmall": 50.2,
             "EfficientNetV2S": 21.6, "InceptionResNetV2": 55.9, "ResNet152": 60.4, "ResNet152V2": 60.4,
             "EfficientNetB7": 66.7, "EfficientNetV2M": 54.4, "ConvNeXtBase": 88.5, "NASNetLarge": 88.9,
             "EfficientNetV2L": 119.0, "VGG16": 138.4, "VGG19": 143.7, "ConvNeXtLarge": 197.8, "ConvNeXtXLarge": 350.1}


def _by_size(names: list[str]) -> list[str]:
    return sorted(names, key=lambda n: (_PARAMS_M.get(n, 1000.0), n))


if __name__ == "__main__":
    sys.exit(main())
