"""An image's size from its header, without decoding it: JPEG, PNG, BMP, WebP and TIFF.

A 631-byte JPEG can claim 30000x30000 pixels, which OpenCV would allocate (2.7 GB as BGR) before
finding out the data is missing. :func:`check` reads the size from the header first and refuses an
image above :attr:`~..contract.limits.Limits.max_pixels`; bytes in no format read here are refused
too, since their size cannot be known before decoding.
"""

from __future__ import annotations

import struct

from ..contract.errors import DataError
from ..contract.limits import LimitError, too_many

FORMATS = "jpg/png/bmp/webp/tiff"


def dimensions(data: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) read from the header; None when the bytes are in no format known here
    or the header is cut short."""
    try:
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return "png", w, h
        if data[:2] == b"BM" and len(data) >= 26:
            if struct.unpack("<I", data[14:18])[0] == 12:   # OS/2 BITMAPCOREHEADER: 16-bit sizes
                w, h = struct.unpack("<HH", data[18:22])
            else:
                w, h = struct.unpack("<ii", data[18:26])
            return "bmp", abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff(data)
    except struct.error:
        return None
    return None


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    i, n = 2, len(data)
    while i + 9 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:                                     # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:   # markers without a length
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):   # SOFn
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return "jpeg", w, h
        i += 2 + struct.unpack(">H", data[i + 2:i + 4])[0]
    return None


def _webp(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return "webp", w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = struct.unpack("<I", data[21:25])[0]
        return "webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return "webp", w, h
    return None


def _tiff(data: bytes) -> tuple[str, int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")                     # BigTIFF: 64-bit offsets
    if big:
        offset = struct.unpack(end + "Q", data[8:16])[0]
        count = struct.unpack(end + "Q", data[offset:offset + 8])[0]
        first, size, value_at = offset + 8, 20, 12
    else:
        offset = struct.unpack(end + "I", data[4:8])[0]
        count = struct.unpack(end + "H", data[offset:offset + 2])[0]
        first, size, value_at = offset + 2, 12, 8
    found: dict[int, int] = {}
    for k in range(min(count, 4096)):
        at = first + k * size
        tag, kind = struct.unpack(end + "HH", data[at:at + 4])
        if tag not in (256, 257):                               # ImageWidth, ImageLength
            continue
        value = data[at + value_at:at + size]
        fmt = {3: "H", 4: "I", 16: "Q"}.get(kind)
        if fmt is None:
            return None
        found[tag] = struct.unpack(end + fmt, value[:struct.calcsize(fmt)])[0]
    if 256 in found and 257 in found:
        return "tiff", found[256], found[257]
    return None


def check(data: bytes, name: str, reduce: int = 1, max_pixels: int | None = None) -> tuple[str, int, int]:
    """The image's (format, width, height), after refusing one too large to decode or of unknown size.

    ``reduce`` (JPEG only) is the DCT scaling the decoder will use: 1/2, 1/4 or 1/8 of each side.
    """
    from ..contract.limits import limits

    dims = dimensions(data)
    if dims is None:
        raise DataError(f"{name} is not a decodable image (no {FORMATS} header, or one cut short)",
                        f"give a {FORMATS} image")
    fmt, w, h = dims
    r = reduce if fmt == "jpeg" else 1
    pixels = -(-w // r) * -(-h // r)
    limit = max_pixels if max_pixels is not None else limits().max_pixels
    if pixels > limit:
        what, fix = too_many(f"{name} is {w}x{h}" + (f" (1/{r} scale: {-(-w // r)}x{-(-h // r)})" if r > 1 else "")
                             + ",", pixels, "max_pixels", "pixels", limit)
        raise LimitError(what, f"resize it; {fix}")
    return dims
