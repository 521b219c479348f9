"""Finding and decoding image files with OpenCV (gray, RGBA, palette and 16-bit handled)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..contract.errors import DataError
from ..contract.files import read_regular, walk
from ..contract.limits import limits
from . import imagesize
from .opencv import cv2 as _cv2

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def iter_images(root: str | os.PathLike) -> Iterator[Path]:
    """Image files under ``root``, recursively, in a stable (sorted) order; hidden entries skipped, each real
    folder entered once (symlink loops end), see :func:`..contract.files.walk`."""
    return (p for p in walk(root) if is_image(p.name))


def expand_sources(sources: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given, folders expanded recursively to their images."""
    for src in sources:
        p = Path(src)
        if p.is_dir():
            yield from iter_images(p)
        else:
            yield p


def read_bytes(path: str | os.PathLike) -> bytes:
    """A regular file's bytes (never a FIFO or device: nothing here can block or read forever), bounded."""
    data = read_regular(path, limits().max_image_bytes, "max_image_bytes")
    if not data:
        raise DataError(f"{path} is empty (0 bytes)", "remove or replace the file")
    return data


def decode(data: bytes, name: str = "image", reduce: int = 1) -> np.ndarray:
    """Decode image bytes, keeping depth and alpha (``reduce`` 2/4/8 uses JPEG reduced decoding)."""
    imagesize.check(data, name, reduce)   # before OpenCV allocates what the header claims
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
