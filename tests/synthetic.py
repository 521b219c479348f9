"""A synthetic-but-real detection and segmentation set, and a small detector and segmenter trained on it.

Test and benchmark helper (not shipped; ``tests/support.py`` is its sibling). Nothing is downloaded:
shapes (circle, square, triangle) with random sizes, colours and partial occlusions are pasted onto
random crops of scikit-image's textures and photos. Boxes are exact (from each shape's *visible*
pixels, after later shapes occlude it) and masks are per-pixel class ids (0 background, 1 + class).
Originals have varied, non-square sizes (``size`` range), so letterbox mapping is exercised.

``write_set(root, n, seed)`` writes::

    root/images/img_000.png ...      the images
    root/labels/img_000.txt ...      YOLO: class cx cy w h, normalised to the image
    root/annotations.json            COCO: images, annotations (bbox x,y,w,h pixels), categories
    root/masks/img_000.png ...       uint8 class id per pixel (0 = background)
    root/names.txt                   class names, one per line

and returns a :class:`SyntheticSet` with the arrays for training.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

CLASSES = ("circle", "square", "triangle")
BACKGROUNDS = ("brick", "grass", "gravel", "astronaut", "coffee", "chelsea", "rocket", "camera")
INPUT = 64            # the trained models' input size (letterboxed)
GRID = INPUT // 8     # the detector's grid (stride 8)


@dataclass(frozen=True)
class Sample:
    image: np.ndarray          # (H, W, 3) uint8 RGB
    boxes: np.ndarray          # (K, 4) float32 x1, y1, x2, y2 pixels (visible extent)
    classes: np.ndarray        # (K,) int64 in 0..len(CLASSES)-1
    mask: np.ndarray           # (H, W) uint8, 0 background, 1 + class


@dataclass(frozen=True)
class SyntheticSet:
    root: Path
    samples: tuple[Sample, ...]
    paths: tuple[Path, ...]

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def labels(self) -> Path:
        return self.root / "labels"

    @property
    def coco(self) -> Path:
        return self.root / "annotations.json"

    @property
    def masks(self) -> Path:
        return self.root / "masks"

    @property
    def names(self) -> Path:
        return self.root / "names.txt"


def _backgrounds() -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in BACKGROUNDS:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(img[:, :, :3]).astype(np.uint8))
    return out


def _shape_mask(kind: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray | None:
    """A filled shape of class ``kind`` somewhere in an (h, w) canvas (at least half inside)."""
    import cv2

    m = np.zeros((h, w), np.uint8)
    size = int(rng.integers(max(20, min(h, w) // 5), max(21, int(min(h, w) / 2.2))))
    cx, cy = int(rng.integers(size // 3, w - size // 3)), int(rng.integers(size // 3, h - size // 3))
    if kind == 0:
        cv2.circle(m, (cx, cy), size // 2, 1, -1)
    elif kind == 1:
        a = rng.uniform(0, np.pi / 2)
        pts = [(cx + size / 2 * np.cos(a + k * np.pi / 2) * 1.2, cy + size / 2 * np.sin(a + k * np.pi / 2) * 1.2)
               for k in range(4)]
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    else:
        a = rng.uniform(0, 2 * np.pi)
        pts = [(cx + size * 0.6 * np.cos(a + k * 2 * np.pi / 3), cy + size * 0.6 * np.sin(a + k * 2 * np.pi / 3))
               for k in range(3)]
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
    return m if m.sum() > 0 else None


def make_sample(rng: np.random.Generator, backgrounds: list[np.ndarray], size: tuple[int, int] = (120, 200),
                max_shapes: int = 4) -> Sample:
    """One image: a random crop of a texture/photo, 1..max_shapes shapes, later ones occluding earlier ones."""
    h, w = (int(v) for v in rng.integers(size[0], size[1] + 1, 2))
    if abs(h - w) < 16:                                       # never square: letterbox padding is exercised
        w = min(size[1], h + 24) if h + 24 <= size[1] else h - 24
    bg = backgrounds[int(rng.integers(len(backgrounds)))]
    scale = rng.uniform(0.4, 1.0)
    ch, cw = min(bg.shape[0], int(h / scale)), min(bg.shape[1], int(w / scale))
    y0, x0 = int(rng.integers(0, bg.shape[0] - ch + 1)), int(rng.integers(0, bg.shape[1] - cw + 1))
    import cv2

    img = cv2.resize(bg[y0:y0 + ch, x0:x0 + cw], (w, h), interpolation=cv2.INTER_AREA).copy()
    mask = np.zeros((h, w), np.uint8)
    owner = np.full((h, w), -1, np.int32)
    kinds: list[int] = []
    areas: list[int] = []
    for k in range(int(rng.integers(1, max_shapes + 1))):
        kind = int(rng.integers(len(CLASSES)))
        m = _shape_mask(kind, h, w, rng)
        if m is None:
            continue
        colour = rng.integers(0, 256, 3)
        while np.abs(colour.astype(int) - img[m > 0].mean(axis=0)).sum() < 120:   # visible against the background
            colour = rng.integers(0, 256, 3)
        shade = np.clip(colour[None, :] + rng.normal(0, 8, (int(m.sum()), 3)), 0, 255)
        img[m > 0] = shade.astype(np.uint8)
        owner[m > 0] = len(kinds)
        mask[m > 0] = kind + 1
        kinds.append(kind)
        areas.append(int(m.sum()))
    boxes, classes = [], []
    for i, (kind, area) in enumerate(zip(kinds, areas)):
        ys, xs = np.nonzero(owner == i)
        if len(xs) < max(30, 0.35 * area):        # mostly hidden: not an object any more (its pixels stay in the mask)
            continue
        boxes.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        classes.append(kind)
    return Sample(img, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64), mask)


def write_set(root: str | Path, n: int, seed: int = 0, size: tuple[int, int] = (120, 200)) -> SyntheticSet:
    """Generate ``n`` samples (seeded) and write images, YOLO labels, COCO json, masks and names.txt."""
    import cv2

    root = Path(root)
    for sub in ("images", "labels", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bgs = _backgrounds()
    samples, paths = [], []
    coco = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CLASSES)]}
    for i in range(n):
        s = make_sample(rng, bgs, size)
        name = f"img_{i:03d}"
        path = root / "images" / f"{name}.png"
        assert cv2.imwrite(str(path), cv2.cvtColor(s.image, cv2.COLOR_RGB2BGR))
        assert cv2.imwrite(str(root / "masks" / f"{name}.png"), s.mask)
        h, w = s.mask.shape
        lines = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"
                 for b, c in zip(s.boxes, s.classes)]
        (root / "labels" / f"{name}.txt").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        coco["images"].append({"id": i + 1, "file_name": path.name, "width": w, "height": h})
        for b, c in zip(s.boxes, s.classes):
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                                        "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                                        "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0})
        samples.append(s)
        paths.append(path)
    (root / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    (root / "names.txt").write_text("\n".join(CLASSES) + "\n", encoding="utf-8")
    return SyntheticSet(root, tuple(samples), tuple(paths))


# --- the letterbox geometry the board's preprocessing uses (device/preprocess.resize) ---------------

def letterbox_params(h: int, w: int, size: int = INPUT) -> tuple[float, int, int, int, int]:
    """(ratio, new_h, new_w, y0, x0): how an (h, w) original sits in the size×size letterboxed input."""
    r = min(size / h, size / w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return r, nh, nw, (size - nh) // 2, (size - nw) // 2


def inputs_of(data: SyntheticSet, spec) -> np.ndarray:
    """The model inputs, through the board's own loading and preprocessing (the spec: letterbox, raw)."""
    from keras_edge.device.inputs import images
    from keras_edge.device.inputs.preprocess import preprocess

    return np.stack([preprocess(images.load(p), spec) for p in data.paths]).astype(np.float32)


def input_spec():
    from keras_edge.device.inputs.preprocess import PreprocessSpec

    return PreprocessSpec.from_preset("raw", INPUT, INPUT, 3, resize="letterbox")


def detection_targets(data: SyntheticSet, classes: int = len(CLASSES), flip: bool = False) -> np.ndarray:
    """(N, GRID*GRID, 5 + C) training targets: [cx, cy, w, h] normalised to the input, objectness, one-hot class,
    one object per grid cell (the larger wins); ``flip``: for the inputs mirrored left to right."""
    y = np.zeros((len(data.samples), GRID * GRID, 5 + classes), np.float32)
    for n, s in enumerate(data.samples):
        h, w = s.mask.shape
        r, nh, nw, y0, x0 = letterbox_params(h, w)
        order = np.argsort([-(b[2] - b[0]) * (b[3] - b[1]) for b in s.boxes])
        for k in order[::-1]:                     # smallest first: the largest object of a cell is written last
            b, c = s.boxes[k], s.classes[k]
            bx1, by1, bx2, by2 = (b[0] * r + x0) / INPUT, (b[1] * r + y0) / INPUT, (b[2] * r + x0) / INPUT, (b[3] * r + y0) / INPUT
            if flip:
                bx1, bx2 = 1.0 - bx2, 1.0 - bx1
            cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
            gx, gy = min(GRID - 1, int(cx * GRID)), min(GRID - 1, int(cy * GRID))
            cell = gy * GRID + gx
            y[n, cell, :] = 0
            y[n, cell, :4] = (cx, cy, bx2 - bx1, by2 - by1)
            y[n, cell, 4] = 1
            y[n, cell, 5 + c] = 1
    return y


def segmentation_targets(data: SyntheticSet) -> np.ndarray:
    """(N, INPUT, INPUT) class ids letterboxed like the images (nearest neighbour; padding is background)."""
    import cv2

    out = np.zeros((len(data.samples), INPUT, INPUT), np.uint8)
    for n, s in enumerate(data.samples):
        h, w = s.mask.shape
        _, nh, nw, y0, x0 = letterbox_params(h, w)
        out[n, y0:y0 + nh, x0:x0 + nw] = cv2.resize(s.mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
    return out


# --- the models ------------------------------------------------------------------------------------

def _grid_offsets() -> np.ndarray:
    gy, gx = np.meshgrid(np.arange(GRID), np.arange(GRID), indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)[None]   # (1, G*G, 2) x, y


def _backbone(x, keras):
    L = keras.layers
    x = L.Rescaling(1 / 255.0)(x)
    for filters in (16, 32, 48):
        x = L.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        x = L.ReLU()(x)
        x = L.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    return x                                   # (G, G, 48)


def _decode(raw, keras, box_scale: float):
    """Raw (G*G, 5+C) → [cx, cy, w, h] (× box_scale), sigmoid objectness, sigmoid class scores."""
    import keras.ops as K

    offsets = K.convert_to_tensor(_grid_offsets())
    xy = (K.sigmoid(raw[..., 0:2]) + offsets) / GRID
    wh = K.sigmoid(raw[..., 2:4])
    rest = K.sigmoid(raw[..., 4:])
    return K.concatenate([K.concatenate([xy, wh], axis=-1) * box_scale, rest], axis=-1)


def build_detector(classes: int = len(CLASSES)):
    """A YOLO-style dense head on an 8×8 grid whose graph ends in decoded boxes: (1, 64, 5 + C)."""
    import keras

    L = keras.layers
    inp = keras.Input((INPUT, INPUT, 3), name="image")
    x = _backbone(inp, keras)
    x = L.Conv2D(64, 3, padding="same", activation="relu")(x)
    raw = L.Reshape((GRID * GRID, 5 + classes))(L.Conv2D(5 + classes, 1)(x))
    return keras.Model(inp, raw, name="shapes_raw")


def decoded(raw_model, units: str = "normalized"):
    """The trained raw model with decoding in the graph; boxes in ``units`` (normalized | pixels of the input)."""
    import keras

    scale = 1.0 if units == "normalized" else float(INPUT)
    layer = DecodeBoxes(box_scale=scale)
    return keras.Model(raw_model.input, layer(raw_model.output), name=f"shapes_det_{units}")


@keras.saving.register_keras_serializable(package="keras_edge_tests")
class DecodeBoxes(keras.layers.Layer):
    """Raw grid outputs → decoded boxes and scores (registered: the saved model reloads in safe mode)."""

    def __init__(self, box_scale: float = 1.0, **kw):
        super().__init__(**kw)
        self.box_scale = float(box_scale)

    def call(self, raw):
        return _decode(raw, keras, self.box_scale)

    def get_config(self):
        return {**super().get_config(), "box_scale": self.box_scale}


def detection_loss(y_true, y_pred):
    """Objectness BCE everywhere; box L1 and class BCE on cells with an object (y_pred is the raw head)."""
    import keras.ops as K

    offsets = K.convert_to_tensor(_grid_offsets())
    obj_t = y_true[..., 4]
    xy = (K.sigmoid(y_pred[..., 0:2]) + offsets) / GRID
    wh = K.sigmoid(y_pred[..., 2:4])
    box = K.concatenate([xy, wh], axis=-1)
    obj_l = K.mean(K.binary_crossentropy(obj_t, y_pred[..., 4], from_logits=True) * (1.0 + 2.0 * obj_t))
    box_l = K.sum(K.sum(K.abs(box - y_true[..., :4]), axis=-1) * obj_t) / (K.sum(obj_t) + 1.0)
    cls_l = K.sum(K.mean(K.binary_crossentropy(y_true[..., 5:], y_pred[..., 5:], from_logits=True), axis=-1) * obj_t) / (
        K.sum(obj_t) + 1.0)
    return obj_l + 5.0 * box_l + 2.0 * cls_l


def train_detector(data: SyntheticSet, epochs: int = 15, seed: int = 0):
    """Train the raw detector on ``data``; returns the raw model (wrap it with :func:`decoded`)."""
    import keras

    keras.utils.set_random_seed(seed)
    x, y = inputs_of(data, input_spec()), detection_targets(data)
    x, y = np.concatenate([x, x[:, :, ::-1]]), np.concatenate([y, detection_targets(data, flip=True)])   # mirrored too
    model = build_detector()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=detection_loss)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return model


def build_segmenter(classes: int = len(CLASSES) + 1):
    """A tiny encoder-decoder: (1, 64, 64, 3) raw pixels → (1, 64, 64, C) softmax (C includes background)."""
    import keras

    L = keras.layers
    inp = keras.Input((INPUT, INPUT, 3), name="image")
    x = L.Rescaling(1 / 255.0)(inp)
    e1 = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.Conv2D(24, 3, strides=2, padding="same", activation="relu")(e1)
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = L.UpSampling2D(4, interpolation="bilinear")(x)
    x = L.Concatenate()([x, e1])
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    out = L.Conv2D(classes, 1, activation="softmax")(x)
    return keras.Model(inp, out, name="shapes_seg")


def train_segmenter(data: SyntheticSet, epochs: int = 15, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    x, y = inputs_of(data, input_spec()), segmentation_targets(data)
    x, y = np.concatenate([x, x[:, :, ::-1]]), np.concatenate([y, y[:, :, ::-1]])   # mirrored too
    model = build_segmenter()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return model
