"""What a source is, and the loop every stream source (a video file, a camera, ...) shares.

A source turns one thing the user named (a file, a camera, a stream address) into worker jobs
(:class:`~keras_edge.device.run.types.Job`), lazily and in order. Image files and arrays are read and
decoded by the workers; a stream's frames are decoded here, on the reader (a stream decodes in order), and
preprocessed by the workers (an MJPEG AVI's frames are only cut out of the file here: :mod:`...inputs.avi`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar, Iterator

import numpy as np

from ...contract.errors import DataError, EdgeError
from ...contract.limits import limits, too_many
from ..types import Feed, Item, Job, StreamStats


@dataclass
class Context:
    """What every source's jobs need: the feed that makes tensors, the stop flag, stream counters, limits."""

    feed: Feed
    stop: threading.Event
    stats: StreamStats
    max_frames: int | None = None
    realtime: bool = False          # read video files at their own frame rate, as live streams


class Source:
    kind: ClassVar[str]
    stream: ClassVar[bool] = False   # frames from one decoder, in order (counted as a stream)
    live: ClassVar[bool] = False     # frames come at their own pace; late ones are dropped (a camera)
    description: ClassVar[str] = ""  # for messages: what a user may give
    in_folders: ClassVar[bool] = True  # read when found in a folder the user named
    decodes: ClassVar[bool] = True     # its inputs are decoded (images, frames), not given as tensors

    def __init__(self, what: Path | int | str):
        self.what = what

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether this source reads the file ``path`` (by its name; a folder's files are asked one by one)."""
        return False

    @classmethod
    def claims_name(cls, source: str) -> bool:
        """Whether this source reads ``source`` though it is no file (a stream address, a device)."""
        return False

    @property
    def name(self) -> str:
        return str(self.what)

    def realtime(self, ctx: Context) -> bool:
        """Whether this source's frames come due at their own rate (a camera always; a video with --realtime)."""
        return self.live

    def jobs(self, ctx: Context) -> Iterator[Job]:
        raise NotImplementedError


def fail(e: EdgeError) -> Callable[[], list[Item]]:
    """A job whose making raises ``e``: the runner reports it as this input's error and goes on."""
    def make() -> list[Item]:
        raise e
    return make


def open_capture(what: Path | int | str, what_name: str):
    """An OpenCV capture, or one DataError line saying why it cannot be opened."""
    import cv2

    from ...engine.runtime import captured_stderr

    with captured_stderr():  # OpenCV's backends log their failures on stderr
        cap = cv2.VideoCapture(str(what) if isinstance(what, Path) else what)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        raise DataError(f"{what_name} cannot be opened", "check that it exists, is not in use and that OpenCV can "
                        "decode it (see `keras-edge doctor`)")
    w, h = int(cap.get(3) or 0), int(cap.get(4) or 0)   # CAP_PROP_FRAME_WIDTH, _HEIGHT: before a frame is decoded
    if w * h > limits().max_pixels:
        cap.release()
        raise DataError(*too_many(f"{what_name}'s frames are {w}x{h},", w * h, "max_pixels", "pixels"))
    return cap


def frames(cap, src: Source, ctx: Context) -> Iterator[Job]:
    """A stream's frames as jobs: decoded here (or, for MJPEG packets, by a worker) and preprocessed by a worker.

    Real time (a camera, or a video with ``--realtime``): frames come due at the stream's own rate; a frame
    whose time has passed while an earlier one was being read is skipped (grabbed, not converted) and counted
    as dropped.
    """
    name, feed, stats = src.name, ctx.feed, ctx.stats
    realtime, live = src.realtime(ctx) and not src.live, src.live
    source_fps = float(cap.get(5) or 0.0)                # 5: cv2.CAP_PROP_FPS
    fps = source_fps if realtime else 0.0
    period = int(1e9 / fps) if fps > 0 else int(1e9 / 30)
    start, i = None, 0
    while not ctx.stop.is_set() and (ctx.max_frames is None or i < ctx.max_frames):
        due = None
        if realtime:
            now = time.perf_counter_ns()
            start = now if start is None else start
            due = start + i * period
            if now < due:
                time.sleep((due - now) / 1e9)
            elif now - due >= period:                    # behind by a whole frame: skip it, as a camera would
                if not cap.grab():
                    return
                stats.frames += 1
                stats.dropped += 1
                i += 1
                continue
        t0 = time.perf_counter_ns()
        ok, frame = cap.read()
        if not ok:
            return
        t1 = time.perf_counter_ns()
        stats.frames += 1
        captured = due if realtime else (t1 if live else None)
        if isinstance(frame, bytes):   # an MJPEG frame still compressed: a worker decodes it
            make = _decode_packet(feed, frame, f"{name}#{i}", source_fps)
        else:
            make = _preprocess_frame(feed, frame, f"{name}#{i}", (t1 - t0) / 1e6, source_fps)
        yield Job(f"{name}#{i}", make, captured, live)
        i += 1


def stream_jobs(src: Source, ctx: Context, open_stream: Callable[[], object]) -> Iterator[Job]:
    """Open a stream (one error item if it cannot be), count it, and yield its frames until it ends."""
    try:
        cap = open_stream()
    except EdgeError as e:
        yield Job(src.name, fail(e))
        return
    ctx.stats.streams.append(src.name)
    try:
        yield from frames(cap, src, ctx)
    finally:
        cap.release()


def _decode_packet(feed: Feed, data: bytes, name: str, fps: float) -> Callable[[], list[Item]]:
    item = feed.decide(data, name) if feed.undecided() else None   # on the reader, in order, as for images

    def make() -> list[Item]:
        it = item or feed.from_bytes(data, name)
        it.fps = fps
        return [it]
    return make


def _preprocess_frame(feed: Feed, frame: np.ndarray, name: str, decode_ms: float,
                      fps: float = 0.0) -> Callable[[], list[Item]]:
    def make() -> list[Item]:
        item = feed.from_frame(frame, name)
        item.decode_ms = decode_ms
        item.fps = fps               # 0.0 when the stream does not say
        return [item]
    return make
