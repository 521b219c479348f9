"""Image → the model's input tensor, with OpenCV, as fast as the maths allows.

Decoding, colour conversion and resizing are :mod:`.preprocess` (the one implementation that
calibration also uses). After resizing, every value is one of 256 pixel levels per channel, so
normalisation *and* quantisation collapse into a per-channel 256-entry table built once per model
with exactly :func:`.preprocess.normalize` and :func:`.preprocess.quantize`: applying it (``cv2.LUT``)
gives bit-identical tensors with no float work per pixel for uint8/int8 inputs, and when the table is
the identity (a uint8 model that takes raw pixels) it is skipped altogether.

Colour order is a permutation of channels, and OpenCV resamples every channel alike, so for a
3-channel 8-bit image the runner resizes *first* and swaps BGR→RGB on the small result
(:func:`pixels`): the same bytes as :func:`.preprocess.preprocess_pixels` (a test checks every
mode and interpolation), without touching every pixel of a 1080p frame twice. Other inputs (gray
targets, 16-bit, alpha) take the reference path unchanged.

Large JPEGs can be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the reduced image is
still at least the size the resize step needs; see :class:`DecodePolicy` for when that is allowed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ..contract.bundle import TensorSpec
from ..contract.errors import ModelError
from .images import decode
from .preprocess import ColorOrder, PreprocessSpec, ResizeMode, normalize, preprocess_pixels, quantize, resize

REDUCE_FACTORS = (8, 4, 2)


class Layout(StrEnum):
    NHWC = "nhwc"
    NCHW = "nchw"


class DecodePolicy(StrEnum):
    EXACT = "exact"   # always decode at full size: the tensor is exactly the spec's
    FAST = "fast"     # reduced JPEG decoding whenever the image is at least twice what the resize needs
    AUTO = "auto"     # FAST only when a probe on the run's first large JPEG stays within the tolerance


@dataclass(frozen=True)
class InputPlan:
    """How images become one input tensor: the spec, the tensor, its layout and the value table."""

    spec: PreprocessSpec
    tensor: TensorSpec
    layout: Layout
    lut: np.ndarray | None = field(repr=False, compare=False)   # (256, 1, C) pixel → tensor value; None: identity

    @property
    def shape(self) -> tuple[int, ...]:
        return self.tensor.shape


def image_dims(tensor: TensorSpec) -> tuple[Layout, int, int, int] | None:
    """(layout, H, W, C) if the tensor looks like a batch of one image, else None."""
    s = tensor.shape
    if len(s) != 4:
        return None
    if s[3] in (1, 3) and not (s[1] in (1, 3) and s[3] not in (1, 3)):
        return Layout.NHWC, s[1], s[2], s[3]
    if s[1] in (1, 3):
        return Layout.NCHW, s[2], s[3], s[1]
    return None


def value_table(spec: PreprocessSpec, tensor: TensorSpec) -> np.ndarray:
    """Per channel, the tensor value each pixel level 0..255 becomes: normalize → quantize, exactly."""
    levels = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], spec.channels, axis=2)  # (256, 1, C)
    return quantize(normalize(levels, spec), tensor.dtype, tensor.scale, tensor.zero_point)


def plan_input(spec: PreprocessSpec, tensor: TensorSpec) -> InputPlan:
    """Check that the spec fits the tensor and precompute the value table."""
    dims = image_dims(tensor)
    if dims is None:
        raise ModelError(f"input {tensor.name} has shape {list(tensor.shape)}, which is not an image batch",
                         "feed it arrays (.npy/.npz) instead of images")
    layout, h, w, c = dims
    if (h, w, c) != (spec.height, spec.width, spec.channels):
        raise ModelError(f"the preprocessing spec makes {spec.height}x{spec.width}x{spec.channels} images but input "
                         f"{tensor.name} takes {h}x{w}x{c}", "reconvert the bundle, or pass --input-shape")
    if np.dtype(tensor.dtype).kind not in "fiu":
        raise ModelError(f"input {tensor.name} has dtype {tensor.dtype}, which images cannot feed",
                         "feed it arrays (.npy/.npz) instead of images")
    lut = value_table(spec, tensor)
    if lut.dtype == np.uint8 and np.array_equal(lut[:, 0, :], np.repeat(np.arange(256)[:, None], spec.channels, 1)):
        lut = None
    return InputPlan(spec, tensor, layout, lut)


def pixels(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """:func:`.preprocess.preprocess_pixels`, bit for bit, resizing before the colour swap where that commutes."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or spec.color is ColorOrder.GRAY:
        return preprocess_pixels(img, spec)
    small = resize(img, spec)     # BGR, as OpenCV decoded it
    if spec.color is ColorOrder.BGR:
        return np.ascontiguousarray(small)
    import cv2

    return cv2.cvtColor(small, cv2.COLOR_BGR2RGB)


def to_tensor(pixels: np.ndarray, plan: InputPlan) -> np.ndarray:
    """uint8 (H, W, C) pixels in the spec's size and colour order → the input tensor (batch of one)."""
    if plan.lut is None:
        out = pixels
    else:
        import cv2

        lut = plan.lut if pixels.shape[2] > 1 else plan.lut[:, :, 0]
        out = cv2.LUT(pixels, lut)
        if out.ndim == 2:
            out = out[:, :, None]
    if plan.layout is Layout.NCHW:
        out = out.transpose(2, 0, 1)
    return np.ascontiguousarray(out[None])


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model, with what it cost."""

    tensor: np.ndarray
    decode_ms: float
    preprocess_ms: float
    reduce: int = 1
    image_hw: tuple[int, int] | None = None   # the original image's (h, w), for mapping results back
    image: np.ndarray | None = None           # the decoded image, only when asked to keep it (drawing)


def prepare(data: bytes, name: str, plan: InputPlan, reduce: int = 1, keep: bool = False) -> Prepared:
    """Decode image bytes (reduced when ``reduce`` > 1) and turn them into the input tensor.

    ``image_hw`` is the full image's size even when decoded reduced (from the JPEG header); ``keep`` keeps
    the decoded image (a plain run does not hold it beyond this call).
    """
    t0 = time.perf_counter_ns()
    img = decode(data, name, reduce)
    t1 = time.perf_counter_ns()
    tensor = to_tensor(pixels(img, plan.spec), plan)
    t2 = time.perf_counter_ns()
    hw = (jpeg_size(data) if reduce > 1 else None) or (int(img.shape[0]), int(img.shape[1]))
    return Prepared(tensor, (t1 - t0) / 1e6, (t2 - t1) / 1e6, reduce, hw, img if keep else None)


def prepare_array(img: np.ndarray, plan: InputPlan) -> np.ndarray:
    """A decoded image (OpenCV order: gray/BGR/BGRA; 8 or 16 bit) → the input tensor."""
    return to_tensor(pixels(img, plan.spec), plan)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|``, computed in one buffer of a type wide enough to hold it exactly.

    Integer tensors (the usual int8/uint8 inputs) subtract into int32 rather than through two float64 copies:
    a 224x224x3 input costs 0.6 MB here instead of 3.6 MB, which showed in a one-image run's peak RSS.
    """
    wide = np.int32 if a.dtype.kind in "iu" and b.dtype.kind in "iu" and max(a.itemsize, b.itemsize) <= 2 else np.float64
    d = np.subtract(a, b, dtype=wide)
    np.abs(d, out=d)
    return float(d.max()) if d.size else 0.0


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's SOF marker, without decoding; None if not a (readable) JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2:i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[i + 5:i + 7], "big"), int.from_bytes(data[i + 7:i + 9], "big")
        i += 2 + seg
    return None


def needed_size(src_hw: tuple[int, int], spec: PreprocessSpec) -> tuple[int, int]:
    """The (h, w) that the part of the image the resize step reads must keep to be downscaled, not upscaled."""
    h, w = src_hw
    if spec.resize is ResizeMode.CROP:
        return spec.height, spec.width  # the crop keeps the target's aspect, so its size scales with it
    if spec.resize is ResizeMode.LETTERBOX:
        r = min(spec.height / h, spec.width / w)
        return max(1, round(h * r)), max(1, round(w * r))
    return spec.height, spec.width


def reduce_factor(data: bytes, spec: PreprocessSpec) -> int:
    """The largest JPEG reduction (8, 4, 2) that leaves the image at least as large as the resize needs; else 1."""
    hw = jpeg_size(data)
    if hw is None:
        return 1
    h, w = hw
    nh, nw = needed_size(hw, spec)
    if spec.resize is ResizeMode.CROP:
        # the crop region of the full image, then how much of it a reduction keeps
        ch, cw = (h, round(h * spec.width / spec.height)) if w * spec.height > h * spec.width \
            else (round(w * spec.height / spec.width), w)
        h, w = ch, cw
    for f in REDUCE_FACTORS:
        if h // f >= nh and w // f >= nw:
            return f
    return 1


def tolerance(plan: InputPlan) -> float:
    """What "not beyond the spec's tolerance" means for this tensor: one step for integers, the spec's for floats."""
    return 1.0 if np.dtype(plan.tensor.dtype).kind in "iu" else float(plan.spec.tolerance)

