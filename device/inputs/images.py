"""Finding and decoding image files with OpenCV (gray, RGBA, palette and 16-bit handled)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..contract.errors import DataError
from .opencv import cv2 as _cv2

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def iter_images(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under ``root``, recursively, in a stable (sorted) order; hidden entries skipped."""
    root = Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and is_image(name):
                yield Path(dirpath) / name


def expand_sources(sources: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given, folders expanded recursively to their images."""
    for src in sources:
        p = Path(src)
        if p.is_dir():
            yield from iter_images(p)
        else:
            yield p


def read_bytes(path: str | os.PathLike) -> bytes:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file", "check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a directory", "pass image files or a folder of images") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied", "check the file's permissions") from None
    if not data:
        raise DataError(f"{path} is empty (0 bytes)", "remove or replace the file")
    return data


def decode(data: bytes, name: str = "image", reduce: int = 1) -> np.ndarray:
    """Decode image bytes, keeping depth and alpha (``reduce`` 2/4/8 uses JPEG reduced decoding)."""
    cv2 = _cv2()

    buf = np.frombuffer(data, dtype=np.uint8)
    flag = {1: cv2.IMREAD_UNCHANGED, 2: cv2.IMREAD_REDUCED_COLOR_2,
            4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[reduce]
    try:
        img = cv2.imdecode(buf, flag)
    except cv2.error as e:
        raise DataError(f"{name} could not be decoded ({str(e).strip().splitlines()[-1]})",
                        "check that it is a valid image") from None
    if img is None or img.size == 0:
        raise DataError(f"{name} is not a decodable image", "check that it is a valid jpg/png/bmp/webp/tiff")
    return img


def load(path: str | os.PathLike, reduce: int = 1) -> np.ndarray:
    """Read and decode one image file (OpenCV channel order: gray, BGR or BGRA)."""
    return decode(read_bytes(path), str(path), reduce)
