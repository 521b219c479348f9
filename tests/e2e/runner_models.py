"""Real models for the runner tests: a digits CNN trained here, converted with the TFLite converter.

Built once per test session (about 20 s on 2 cores) and written as a keras-edge bundle with
device.bundle, so the runner is exercised on files shaped exactly like the converter's output.
Also builds small models that keras-edge did not make: several inputs/outputs, float16/int8 I/O.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from keras_edge.device import bundle as B
from keras_edge.device.preprocess import PreprocessSpec

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as 32x32 uint8 grayscale images (N, 32, 32, 1) and labels."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    imgs = np.stack([cv2.resize((im * 255 / 16).astype(np.uint8), (32, 32), interpolation=cv2.INTER_LINEAR)
                     for im in d.images])
    return imgs[..., None], d.target.astype(np.int64)


def train_digits(epochs: int = 4):
    import keras

    x, y = digits_images()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((32, 32, 1)),
        keras.layers.Rescaling(1 / 255),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1500].astype(np.float32), y[:1500], epochs=epochs, batch_size=32, verbose=0)
    return model, x, y


def convert(model, mode: str, calib: np.ndarray | None = None, io: str = "uint8") -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in ("int8", "int16x8"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([c[None].astype(np.float32)] for c in calib)
        if mode == "int8":
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8, "float32": tf.float32}[io]
            conv.inference_output_type = conv.inference_input_type
        else:
            conv.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    return conv.convert()


def tensor_specs(content: bytes, which: str) -> tuple[B.TensorSpec, ...]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=content)
    details = it.get_input_details() if which == "inputs" else it.get_output_details()
    return tuple(B.TensorSpec(name=d["name"], shape=tuple(int(s) for s in d["shape_signature"]),
                              dtype=np.dtype(d["dtype"]).name, scale=float(d["quantization"][0]),
                              zero_point=int(d["quantization"][1])) for d in details)


def write_digits_bundle(out: Path, modes=("fp32", "fp16", "dynamic", "int8")) -> Path:
    """Train, convert to ``modes`` and write a keras-edge bundle (manifest, labels, reference.npz)."""
    model, x, y = train_digits()
    calib, ref = x[1500:1600], x[1600:1608].astype(np.float32)
    spec = PreprocessSpec.from_preset("raw", 32, 32, 1, reason="the model starts with a Rescaling layer")
    ref_out = model.predict(ref, verbose=0).astype(np.float32)
    with B.staged_dir(out) as tmp:
        variants = []
        for mode in modes:
            content = convert(model, mode, calib)
            (tmp / f"{mode}.tflite").write_bytes(content)
            tol = B.Tolerance(max_abs=0.08 if mode in ("int8", "int16x8") else 1e-3, min_agreement=0.85)
            variants.append(B.Variant(name=mode, mode=mode, status="ok", file=f"{mode}.tflite",
                                      sha256=B.sha256_file(tmp / f"{mode}.tflite"), bytes=len(content),
                                      inputs=tensor_specs(content, "inputs"), outputs=tensor_specs(content, "outputs"),
                                      tolerance=tol))
        (tmp / "labels.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
        np.savez(tmp / "reference.npz", input_0=ref, output_0=ref_out)
        fp32 = variants[0]
        manifest = B.Manifest(name="digits", preprocess=spec, inputs=fp32.inputs, outputs=fp32.outputs,
                              variants=tuple(variants), labels="labels.txt", default=modes[-1],
                              reference="reference.npz")
        B.write_manifest(tmp, manifest)
    return out


def write_digit_pngs(out: Path, n: int = 12) -> list[Path]:
    """Real digit images from scikit-learn as PNG files, named by their class."""
    import cv2

    x, y = digits_images()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1600, 1600 + n):
        p = out / f"{i}_label{y[i]}.png"
        cv2.imwrite(str(p), x[i, :, :, 0])
        paths.append(p)
    return paths


def multi_io_model(io: str):
    """A two-input, two-output functional model (image + vector → class scores + embedding)."""
    import keras

    keras.utils.set_random_seed(1)
    img = keras.Input((16, 16, 3), name="image")
    vec = keras.Input((4,), name="extra")
    h = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(img))
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Concatenate()([h, vec])
    scores = keras.layers.Dense(5, activation="softmax", name="scores")(h)
    emb = keras.layers.Dense(3, name="embedding")(h)
    return keras.Model([img, vec], [scores, emb])
