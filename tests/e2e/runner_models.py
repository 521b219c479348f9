"""Models keras-edge did not make, for the runner tests: built here with Keras, converted with the
plain TFLite converter (several inputs/outputs, integer I/O, dynamic shapes)."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def convert(model, mode: str) -> bytes:
    """Plain TFLite conversion: ``fp32``, or ``fp16``/``dynamic`` weight quantization."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def multi_io_model(io: str = "float32"):
    """A two-input, two-output functional model (image + vector → class scores + embedding)."""
    import keras

    keras.utils.set_random_seed(1)
    img = keras.Input((16, 16, 3), name="a_image")
    vec = keras.Input((4,), name="b_extra")
    h = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(img))
    h = keras.layers.GlobalAveragePooling2D()(h)
    h = keras.layers.Concatenate()([h, vec])
    scores = keras.layers.Dense(5, activation="softmax", name="scores")(h)
    emb = keras.layers.Dense(3, name="embedding")(h)
    return keras.Model([img, vec], [scores, emb])
