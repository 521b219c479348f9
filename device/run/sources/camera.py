"""A V4L2 camera by index (``--camera N`` or a source ``camera:N``): live frames, the oldest dropped when
inference falls behind. (Raspberry Pi OS's CSI cameras go through libcamera, not V4L2: a source file beside
this one, registered in ``SOURCES``, is where a picamera2 reader would go.)"""

from __future__ import annotations

import os
from typing import Iterator

from ...contract.errors import DataError
from ..types import Job
from .base import Context, Source, open_capture, stream_jobs

PREFIX = "camera:"


class Camera(Source):
    kind = "camera"
    stream = True
    live = True
    description = "camera:N (a V4L2 camera)"

    def __init__(self, what: int | str):
        index = int(str(what).removeprefix(PREFIX)) if str(what).removeprefix(PREFIX).lstrip("-").isdigit() else None
        if index is None:
            raise DataError(f"{what} is not a camera index", "give camera:N with N = 0, 1, …")
        super().__init__(check_camera(index))

    @classmethod
    def claims_name(cls, source: str) -> bool:
        return source.startswith(PREFIX)

    @property
    def name(self) -> str:
        return f"camera{self.what}"

    def jobs(self, ctx: Context) -> Iterator[Job]:
        yield from stream_jobs(self, ctx, lambda: open_capture(self.what, f"camera {self.what}"))


def check_camera(index: int) -> int:
    if index < 0:
        raise DataError(f"camera {index} is not a valid index", "cameras are numbered from 0 (see `keras-edge doctor`)")
    if os.path.isdir("/dev") and os.name == "posix" and not os.path.exists(f"/dev/video{index}"):
        raise DataError(f"camera {index} does not exist (no /dev/video{index})",
                        "list the cameras with `keras-edge doctor`")
    return index
