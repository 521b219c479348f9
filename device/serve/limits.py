"""What a request may cost: body size, decoded pixels, array bytes — checked before anything is decoded.

An image's dimensions are read from its header (PNG, JPEG, BMP, WebP, TIFF) and refused when they
exceed the pixel budget, so a 1 KB PNG that claims 30000x30000 is answered with a 4xx instead of
making OpenCV allocate 900 MB. ``.npy``/``.npz`` bodies are read with ``allow_pickle=False``; an
``.npz`` member's declared size is checked before it is inflated (zipfile stops at the declared size,
so the declaration bounds the work). Nothing here touches the filesystem.
"""

from __future__ import annotations

import io
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from ..contract.checks import positive_int
from ..contract.errors import DataError
from ..inputs.pipeline import jpeg_size

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"


class TooLarge(DataError):
    """The request is within the body limit but what it would decode to is not."""


class Unsupported(DataError):
    """The body is not an image format whose size can be checked before decoding, nor a numpy file."""


@dataclass(frozen=True)
class Limits:
    """Per-request bounds. Defaults fit a 1 GB board: a 24-megapixel photo, 32 MB bodies, 8 waiting requests."""

    max_body_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 24_000_000
    max_array_bytes: int = 96 * 1024 * 1024
    queue: int = 8                 # POST /infer requests waiting or running; one more is answered 503
    max_connections: int = 64      # open connections (page viewers included); one more is answered 503

    def __post_init__(self) -> None:
        positive_int("max_body_bytes", self.max_body_bytes, "a positive number of bytes")
        positive_int("max_pixels", self.max_pixels, "a positive number of pixels")
        positive_int("max_array_bytes", self.max_array_bytes, "a positive number of bytes")
        positive_int("queue", self.queue, "1 or more requests")
        positive_int("max_connections", self.max_connections, "1 or more connections")


def is_arrays(data: bytes) -> bool:
    return data[:6] == NPY_MAGIC or data[:4] == ZIP_MAGIC


def _png(d: bytes) -> tuple[int, int] | None:
    if d[:8] != b"\x89PNG\r\n\x1a\n" or d[12:16] != b"IHDR" or len(d) < 24:
        return None
    w, h = struct.unpack(">II", d[16:24])
    return h, w


def _bmp(d: bytes) -> tuple[int, int] | None:
    if d[:2] != b"BM" or len(d) < 26:
        return None
    if struct.unpack("<I", d[14:18])[0] == 12:          # BITMAPCOREHEADER: 16-bit sizes
        w, h = struct.unpack("<HH", d[18:22])
    else:
        w, h = struct.unpack("<ii", d[18:26])
    return abs(h), abs(w)


def _webp(d: bytes) -> tuple[int, int] | None:
    if d[:4] != b"RIFF" or d[8:12] != b"WEBP" or len(d) < 30:
        return None
    kind = d[12:16]
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", d[26:30])
        return h & 0x3FFF, w & 0x3FFF
    if kind == b"VP8L":
        b = int.from_bytes(d[21:25], "little")
        return ((b >> 14) & 0x3FFF) + 1, (b & 0x3FFF) + 1
    if kind == b"VP8X":
        return int.from_bytes(d[27:30], "little") + 1, int.from_bytes(d[24:27], "little") + 1
    return None


def _tiff(d: bytes) -> tuple[int, int] | None:
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(d[:4])
    if order is None or len(d) < 8:
        return None
    ifd = struct.unpack(order + "I", d[4:8])[0]
    if ifd + 2 > len(d):
        return None
    n = struct.unpack(order + "H", d[ifd:ifd + 2])[0]
    dims: dict[int, int] = {}
    for k in range(n):
        e = ifd + 2 + 12 * k
        if e + 12 > len(d):
            return None
        tag, typ = struct.unpack(order + "HH", d[e:e + 4])
        if tag in (256, 257):   # ImageWidth, ImageLength: SHORT or LONG
            dims[tag] = struct.unpack(order + ("H" if typ == 3 else "I"), d[e + 8:e + (10 if typ == 3 else 12)])[0]
    return (dims[257], dims[256]) if len(dims) == 2 else None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from an image's header, without decoding; None if the format is not one checked here."""
    for read in (_png, jpeg_size, _bmp, _webp, _tiff):
        hw = read(data)
        if hw is not None:
            return hw
    return None


def check_image(data: bytes, limits: Limits) -> tuple[int, int]:
    """The image's (h, w) if decoding it stays within ``limits``; else :class:`TooLarge` or :class:`Unsupported`."""
    hw = image_size(data)
    if hw is None:
        raise Unsupported("the body is not a PNG, JPEG, BMP, WebP or TIFF image, nor an .npy/.npz array file",
                          "send the file's bytes as the request body")
    h, w = hw
    if h <= 0 or w <= 0:
        raise DataError(f"the image header says {w}x{h} pixels", "send a valid image")
    if h * w > limits.max_pixels:
        raise TooLarge(f"the image is {w}x{h} ({h * w / 1e6:.0f} megapixels), above this server's limit of "
                       f"{limits.max_pixels / 1e6:g} megapixels", "send a smaller image")
    return hw


def load_arrays(data: bytes, limits: Limits) -> dict[str, np.ndarray]:
    """An ``.npy`` (→ ``{"input_0": array}``) or ``.npz`` body as arrays; never unpickles, bounded in bytes."""
    try:
        if data[:6] == NPY_MAGIC:
            return {"input_0": np.load(io.BytesIO(data), allow_pickle=False)}
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            infos = z.infolist()
            total = sum(i.file_size for i in infos)
            if total > limits.max_array_bytes:
                raise TooLarge(f"the .npz holds {total / 2**20:.0f} MiB of arrays, above this server's limit of "
                               f"{limits.max_array_bytes / 2**20:g} MiB", "send smaller arrays")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"the body is not a readable numpy file ({str(e).splitlines()[0][:120]})",
                        "send an .npy/.npz saved with numpy (no pickled objects)") from None
