"""Test and benchmark helpers that are not part of the product (they stay out of the shipped wheel).

Used by tests (``from tests.support import ...``, the repository root is on sys.path under
``python -m pytest``) and by ``python -m benchmarks.run``.
"""

from __future__ import annotations

import numpy as np

from keras_edge.demo import digits_images


def digits_rgb(size: int, n: int) -> np.ndarray:
    """The first ``n`` digits as (n, size, size, 3) float32 in [-1, 1]: real images for ImageNet-shaped models."""
    import cv2

    imgs, _ = digits_images()
    x = np.stack([cv2.cvtColor(cv2.resize(im, (size, size)), cv2.COLOR_GRAY2RGB) for im in imgs[:n]])
    return x.astype(np.float32) / 127.5 - 1.0


def settle_batchnorm(model, x: np.ndarray) -> None:
    """Set every BatchNormalization layer's statistics from ``x`` in one training-mode pass.

    With random weights (``weights=None``) activations shrink to nothing by the last layer; statistics
    from real images keep them in a realistic range, so int8 calibration and pruning see real ranges.
    """
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    model(x, training=True)


def tiny_classifier(path, size: int = 16, classes: int = 3):
    """An untrained Rescaling → Conv2D → pooling → softmax classifier on size×size RGB, saved to ``path``
    (for tests where only what hostile data or a failure does matters). Returns the model."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 255)(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(classes, activation="softmax")(x))
    model.save(path)
    return model
