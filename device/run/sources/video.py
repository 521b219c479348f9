"""Video files: decoded in order on the reader by OpenCV; an MJPEG AVI's frames are cut out of the file
and decoded by the workers like JPEG files (:mod:`...inputs.avi`). ``--realtime`` reads them at their own
frame rate, as a camera would deliver them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...contract.files import regular
from ..types import Job
from .base import Context, Source, open_capture, stream_jobs

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


class VideoFile(Source):
    kind = "video"
    stream = True
    description = "mp4/avi/mkv/mov/webm videos"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.suffix.lower() in VIDEO_EXTENSIONS

    def realtime(self, ctx: Context) -> bool:
        return ctx.realtime

    def jobs(self, ctx: Context) -> Iterator[Job]:
        yield from stream_jobs(self, ctx, self._open)

    def _open(self):
        from ...inputs.avi import open_packets

        path = Path(self.what)
        regular(path)   # a FIFO or device named x.avi would block the open
        packets = open_packets(path) if path.suffix.lower() == ".avi" else None
        return packets or open_capture(path, f"video {path}")
