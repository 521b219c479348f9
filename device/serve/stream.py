"""The live picture: the latest frame with its result drawn on it, JPEG-encoded once for every viewer.

The inference thread only *offers* a frame (one assignment under a lock) and goes on. One encoder thread
draws and encodes the newest offered frame, and only while someone watches, at most ``max_fps`` times a second
and at most ``width`` pixels wide (a 1080p frame is drawn at full size, then scaled down: encoding it whole
would cost a small board about what decoding it does); frames offered meanwhile are skipped. Each viewer's
connection thread sends the newest JPEG, then waits for a newer one: a slow viewer misses frames, never holds
up the encoder, inference, or the other viewers.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import numpy as np

from ..run.draw import annotate
from ..run.types import Result

BOUNDARY = "keras-edge-frame"


class Broadcaster:
    """Latest frame in, one JPEG per new frame out, to any number of viewers."""

    def __init__(self, labels: Sequence[str] | None = None, quality: int = 80, width: int = 640, max_fps: float = 15.0,
                 on_watch: Callable[[bool], None] = lambda watched: None):
        self.labels, self.quality, self.width, self.period = labels, quality, width, 1.0 / max_fps
        self.on_watch = on_watch     # told when the first viewer comes and the last goes (frames are kept only then)
        self._next_at = 0.0      # monotonic time before which the next frame is not encoded
        self._cv = threading.Condition()
        self._pending: tuple[np.ndarray, Result, tuple[int, int] | None] | None = None
        self._jpeg: bytes | None = None
        self._seq = 0            # encoded frames so far; viewers wait for a larger one
        self._viewers = 0
        self._closed = False
        self.encoded = 0
        self._thread = threading.Thread(target=self._encode_loop, name="keras-edge-encoder", daemon=True)
        self._thread.start()

    @property
    def viewers(self) -> int:
        return self._viewers

    def offer(self, image: np.ndarray, result: Result, hw: tuple[int, int] | None = None) -> None:
        """The newest frame and its result (called on the inference thread: constant time, never waits).

        ``hw``: the size the result's coordinates refer to, when the image was decoded smaller."""
        with self._cv:
            self._pending = (image, result, hw)
            if self._viewers:
                self._cv.notify_all()

    def _encode_loop(self) -> None:
        import cv2

        while True:
            with self._cv:
                while not self._closed and (self._pending is None or not self._viewers):
                    self._cv.wait()
                if self._closed:
                    return
                early = self._next_at - time.monotonic()
                if early > 0:
                    self._cv.wait(early)     # a newer frame may replace the waiting one meanwhile
                    continue
                image, result, hw = self._pending
                self._pending = None
                self._next_at = time.monotonic() + self.period
            img = annotate(image, result, self.labels, hw)
            if img.shape[1] > self.width:
                h = max(1, round(img.shape[0] * self.width / img.shape[1]))
                img = cv2.resize(img, (self.width, h), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                continue
            with self._cv:
                self._jpeg = buf.tobytes()
                self._seq += 1
                self.encoded += 1
                self._cv.notify_all()

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Count a viewer while the block runs (the encoder works only while someone watches)."""
        with self._cv:
            self._viewers += 1
            if self._viewers == 1:
                self.on_watch(True)
            self._cv.notify_all()
        try:
            yield
        finally:
            with self._cv:
                self._viewers -= 1
                if not self._viewers:
                    self.on_watch(False)
                    self._pending = None      # a frame kept for nobody

    def next(self, after: int, timeout: float) -> tuple[int, bytes | None]:
        """The newest JPEG encoded after frame ``after`` (waiting up to ``timeout`` s for one): (its number, bytes).

        With ``after`` -1 (a new viewer): the current JPEG at once while others watch (it is fresh), else the next.
        """
        with self._cv:
            if after < 0:
                after = self._seq if self._viewers <= 1 else self._seq - 1
            self._cv.wait_for(lambda: self._seq > after or self._closed, timeout)
            return self._seq, self._jpeg if self._seq > after else None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
