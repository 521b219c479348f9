"""Shared fixtures. Nothing here imports TensorFlow at module level: tests/device runs without it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits_demo(tmp_path_factory):
    """The digits CNN trained in this session on scikit-learn's digits, and its image folders."""
    from keras_edge.demo import prepare

    return prepare(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def digits_bundle(digits_demo, tmp_path_factory):
    """The digits model converted to every variant (the real converter, once per session)."""
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.tflite.variants import VARIANTS

    out = tmp_path_factory.mktemp("bundles") / "digits"
    cfg = ConvertConfig(model=digits_demo.model, out=out, calib=digits_demo.train, eval=digits_demo.eval,
                        variants=tuple(VARIANTS), name="digits")
    return convert(cfg)


@pytest.fixture(scope="session")
def write_images():
    """A function writing small synthetic PNGs: ``write(root, {"cat": 3, "dog": 2})`` → root.

    Each key is a class subfolder ("" writes into ``root`` itself). Image ``i`` of class ``k`` is a
    seeded noise image whose top-left pixel encodes ``k`` (blue = 10*k) so tests can tell classes apart.
    """
    import cv2
    import numpy as np

    def write(root, counts: dict[str, int], size: int = 16, seed: int = 0):
        rng = np.random.default_rng(seed)
        for k, (cls, n) in enumerate(counts.items()):
            folder = root / cls if cls else root
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                img[0, 0] = (10 * k, 0, 0)
                assert cv2.imwrite(str(folder / f"{cls or 'img'}_{i:03d}.png"), img)
        return root

    return write
