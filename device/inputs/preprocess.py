"""The preprocessing spec's one implementation (OpenCV + NumPy): resize, colour, normalise, quantize.

Calibration on the host and the runner on the board both call :func:`preprocess`, so what calibration
sees is exactly what the board feeds the model. The spec itself is part of the bundle contract
(:mod:`keras_edge.device.contract.preprocess`); its names are re-exported here for callers of both.

Normalisation is ``(pixel * scale - mean) / std`` per channel, applied after colour conversion.
"""

from __future__ import annotations

import numpy as np

from ..contract.errors import DataError
from ..contract.preprocess import (PRESETS, ColorOrder, Interpolation, Normalization, PreprocessSpec, ResizeMode)
from .opencv import cv2 as _cv2

__all__ = ["PRESETS", "ColorOrder", "Interpolation", "Normalization", "PreprocessSpec", "ResizeMode",
           "to_uint8_color", "resize", "normalize", "preprocess_pixels", "preprocess", "quantize", "dequantize"]


_CV_INTERP = {Interpolation.NEAREST: "INTER_NEAREST", Interpolation.BILINEAR: "INTER_LINEAR",
              Interpolation.AREA: "INTER_AREA", Interpolation.BICUBIC: "INTER_CUBIC"}


def to_uint8_color(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Bring a decoded OpenCV image (gray, BGR, BGRA; 8 or 16 bit) to uint8 in the spec's colour order."""
    cv2 = _cv2()
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
        img = img.astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise DataError(f"unsupported pixel type {img.dtype}", "convert the image to 8 or 16 bit")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        if spec.color is ColorOrder.GRAY:
            return img
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)  # gray→3 channels: order does not matter
    if img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if spec.color is ColorOrder.GRAY:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if spec.color is ColorOrder.RGB:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(img)


def resize(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Resize per the spec's mode and interpolation; output is (H, W) or (H, W, C) uint8."""
    cv2 = _cv2()
    interp = getattr(cv2, _CV_INTERP[spec.interpolation])
    h, w = img.shape[:2]
    th, tw = spec.height, spec.width
    if spec.resize is ResizeMode.CROP:
        # centre-crop to the target aspect ratio (as keras' crop_to_aspect_ratio), then resize
        ch, cw = (h, round(h * tw / th)) if w * th > h * tw else (round(w * th / tw), w)
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        img = img[y0:y0 + ch, x0:x0 + cw]
        h, w = ch, cw
    if spec.resize is ResizeMode.LETTERBOX:
        r = min(th / h, tw / w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
        inner = img if (nh, nw) == (h, w) else cv2.resize(img, (nw, nh), interpolation=interp)
        out = np.full((th, tw) + img.shape[2:], spec.pad_value, dtype=img.dtype)
        y0, x0 = (th - nh) // 2, (tw - nw) // 2
        out[y0:y0 + nh, x0:x0 + nw] = inner
        return out
    if (h, w) == (th, tw):
        return img
    return cv2.resize(img, (tw, th), interpolation=interp)


def normalize(pixels: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 pixels (H, W[, C]) → float32 (H, W, C) per the spec (identity when baked into the graph)."""
    x = pixels.astype(np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if spec.baked or spec.identity_normalization:
        return x
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    return (x * np.float32(spec.scale) - mean) / std


def preprocess_pixels(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Decoded image → uint8 (H, W, C) in the model's size and colour order (no normalisation)."""
    out = resize(to_uint8_color(img, spec), spec)
    return out[:, :, None] if out.ndim == 2 else out


def preprocess(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """Decoded image → float32 (H, W, C) model input, before quantisation. The single implementation."""
    return normalize(preprocess_pixels(img, spec), spec)


def quantize(x: np.ndarray, dtype: np.dtype | str, scale: float, zero_point: int) -> np.ndarray:
    """Float input → the input tensor's dtype using its scale and zero-point (round half to even)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return x.astype(dtype, copy=False)
    if scale == 0.0:
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    info = np.iinfo(dtype)
    q = np.rint(x / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    if scale == 0.0 or q.dtype.kind == "f":
        return q.astype(np.float32, copy=False)
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
