"""Motion-JPEG AVI files read as their compressed frames, so that worker threads can decode them.

A video decoder runs serially on one thread: each frame's decode waits for the previous one. In an
MJPEG AVI every frame is a self-contained JPEG (intra-only, no GOP), so the reader only has to cut the
file into its frame chunks and the JPEG decoding moves to the workers, exactly as for a folder of JPEGs
(same decoder, same reduced-decoding policy). Other codecs, and AVI files whose frames do not decode as
plain JPEG (MJPEG without Huffman tables), keep OpenCV's ``VideoCapture``.

Only the RIFF structure is parsed here (``hdrl`` → the first video stream's ``strh``/``strf``, then the
``movi`` lists of the ``AVI `` and any OpenDML ``AVIX`` parts); the payload is never interpreted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from ..contract.errors import DataError
from ..contract.limits import LimitError, limits, too_many

MJPEG_CODECS = {b"MJPG", b"mjpg", b"AVRn", b"LJPG", b"JPGL", b"dmb1"}


@dataclass(frozen=True)
class MjpegAvi:
    path: Path
    fps: float
    width: int
    height: int
    chunk_ids: tuple[bytes, ...]    # b"00dc"/b"00db" for video stream 0


def _chunks(f: BinaryIO, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, data offset, size) of the chunks between here and ``end`` (LISTs not entered)."""
    while f.tell() + 8 <= end:
        head = f.read(8)
        if len(head) < 8:
            return
        fourcc, size = head[:4], struct.unpack("<I", head[4:])[0]
        start = f.tell()
        if start + size > end + 1:   # a truncated file: enter a cut list, stop at a cut frame
            if fourcc == b"LIST":
                yield fourcc, start, end - start
            return
        yield fourcc, start, size
        f.seek(start + size + (size & 1))


def probe(path: str | Path) -> MjpegAvi | None:
    """The file's MJPEG video stream, or None when it is not an AVI or its first video stream is not MJPEG."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"AVI ":
                return None
            end = 8 + struct.unpack("<I", head[4:8])[0]
            for fourcc, start, size in _chunks(f, end):
                if fourcc == b"LIST" and size >= 4:
                    f.seek(start)
                    if f.read(4) == b"hdrl":
                        return _streams(f, path, start + size)
                    f.seek(start + size + (size & 1))
    except (OSError, struct.error):
        return None
    return None


def _streams(f: BinaryIO, path: Path, end: int) -> MjpegAvi | None:
    video = 0
    for fourcc, start, size in _chunks(f, end):
        if fourcc != b"LIST":
            continue
        f.seek(start)
        if f.read(4) != b"strl":
            f.seek(start + size + (size & 1))
            continue
        strh = strf = None
        for sub, s_start, s_size in _chunks(f, start + size):
            here = f.tell()
            f.seek(s_start)
            if sub == b"strh":
                strh = f.read(min(s_size, 56))
            elif sub == b"strf":
                strf = f.read(min(s_size, 40))
            f.seek(here)
        f.seek(start + size + (size & 1))
        if not strh or len(strh) < 32 or strh[:4] != b"vids":
            continue
        handler = strh[4:8]
        compression = strf[16:20] if strf and len(strf) >= 20 else b""
        if handler not in MJPEG_CODECS and compression not in MJPEG_CODECS:
            return None   # the first video stream is another codec
        scale, rate = struct.unpack("<II", strh[20:28])
        width, height = struct.unpack("<ii", strf[4:12]) if strf and len(strf) >= 12 else (0, 0)
        ids = (b"%02ddc" % video, b"%02ddb" % video)
        return MjpegAvi(path, rate / scale if scale else 0.0, int(width), abs(int(height)), ids)
    return None


class Packets:
    """The frames of an MJPEG AVI as JPEG bytes, in file order; ``read``/``grab`` mirror ``VideoCapture``."""

    def __init__(self, avi: MjpegAvi):
        self.avi = avi
        self.max_nesting = limits().max_nesting
        self._f: BinaryIO | None = open(avi.path, "rb")
        self._it = self._frames()

    def _frames(self) -> Iterator[tuple[int, int]]:
        f = self._f
        assert f is not None
        f.seek(0, 2)
        file_end = f.tell()
        f.seek(0)
        while f.tell() + 12 <= file_end:   # "RIFF AVI " then any OpenDML "RIFF AVIX" parts
            head = f.read(12)
            if head[:4] != b"RIFF":
                return
            riff_end = min(file_end, f.tell() - 4 + struct.unpack("<I", head[4:8])[0])
            yield from self._movi(f, riff_end)
            f.seek(riff_end + (riff_end & 1))

    def _movi(self, f: BinaryIO, end: int, depth: int = 0) -> Iterator[tuple[int, int]]:
        for fourcc, start, size in _chunks(f, end):
            if fourcc == b"LIST" and size >= 4:
                f.seek(start)
                kind = f.read(4)
                if kind in (b"movi", b"rec "):
                    if depth >= self.max_nesting:   # real files nest 2 deep; a crafted one could recurse 5,000
                        raise DataError(*too_many(f"{self.avi.path} nests its frame lists", depth + 1,
                                                  "max_nesting", "levels deep"))
                    f.seek(start + 4)
                    yield from self._movi(f, start + size, depth + 1)
            elif fourcc in self.avi.chunk_ids and size > 0:
                yield start, size

    def read(self) -> tuple[bool, bytes | None]:
        nxt = next(self._it, None)
        if nxt is None or self._f is None:
            return False, None
        here = self._f.tell()
        self._f.seek(nxt[0])
        data = self._f.read(nxt[1])
        self._f.seek(here)
        return len(data) == nxt[1], data

    def grab(self) -> bool:
        return next(self._it, None) is not None

    def get(self, prop: int) -> float:
        return self.avi.fps if prop == 5 else 0.0   # 5: cv2.CAP_PROP_FPS

    def release(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def open_packets(path: Path) -> Packets | None:
    """Packets of an MJPEG AVI whose first frame decodes as a plain JPEG; None otherwise (use VideoCapture)."""
    avi = probe(path)
    if avi is None:
        return None
    packets = Packets(avi)
    ok, first = packets.read()
    packets.release()
    if not ok or not first or not _decodes(first, f"{path}#0"):
        return None
    return Packets(avi)


def _decodes(data: bytes, name: str) -> bool:
    """Whether the first frame decodes as a plain JPEG; a frame above the pixel limit is refused (DataError)."""
    from .images import decode
    from .imagesize import check

    try:
        check(data, name)
    except LimitError:
        raise
    except DataError:
        return False
    try:
        decode(data, name)
    except DataError:
        return False
    return True
