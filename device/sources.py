"""What ``run`` reads: image files and folders, ``.npy``/``.npz`` arrays, video files and cameras.

Decoding and preprocessing run on their own thread, feeding a small queue, so they overlap inference
(OpenCV and the interpreter both release the GIL). Files and video frames are never dropped; a live
camera drops the oldest queued frame when inference falls behind, and counts it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import DataError, EdgeError
from .images import is_image, read_bytes

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})


@dataclass
class Item:
    """One model input set (or the reason it could not be made), with its cost."""

    name: str
    tensors: list[np.ndarray] | None = None
    error: str | None = None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0


@dataclass
class Feed:
    """Turns raw inputs into model tensors; built by the runner from the model's plans."""

    from_bytes: Callable[[bytes, str], Item]
    from_frame: Callable[[np.ndarray, str], Item]
    from_arrays: Callable[[str, dict[str, np.ndarray]], list[Item]]


@dataclass
class StreamStats:
    """Frames read, dropped (live sources only) and the wall time of the stream."""

    frames: int = 0
    dropped: int = 0
    streams: list[str] = field(default_factory=list)


def _kind(p: Path) -> str:
    ext = p.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in ARRAY_EXTENSIONS:
        return "arrays"
    return "image"


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root``, recursively, sorted; hidden entries skipped (as the image walk does)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath) / n for n in sorted(filenames) if not n.startswith("."))


def plan_sources(sources: Iterable[str], camera: int | None) -> list[tuple[str, Path | int]]:
    """Expand folders and classify every source; refuse a missing path or camera up front."""
    out: list[tuple[str, Path | int]] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise DataError(f"{src}: no such file or folder", "check the path")
        if p.is_dir():
            found = [f for f in _walk(p) if _kind(f) in ("image", "video") and (is_image(f) or _kind(f) == "video")]
            if not found:
                raise DataError(f"{src} contains no images or videos",
                                "give a folder with jpg/png/bmp/webp/tiff images or mp4/avi/mkv videos")
            out += [(_kind(f), f) for f in found]
        else:
            out.append((_kind(p), p))
    if camera is not None:
        out.append(("camera", open_camera_check(camera)))
    if not out:
        raise DataError("nothing to run on", "give image files, folders, video files, .npy/.npz files or a camera")
    return out


def open_camera_check(index: int) -> int:
    if index < 0:
        raise DataError(f"camera {index} is not a valid index", "cameras are numbered from 0 (see `keras-edge doctor`)")
    if os.path.isdir("/dev") and os.name == "posix" and not os.path.exists(f"/dev/video{index}"):
        raise DataError(f"camera {index} does not exist (no /dev/video{index})",
                        "list the cameras with `keras-edge doctor`")
    return index


def _video_frames(cap, name: str, feed: Feed, stop: threading.Event, stats: StreamStats) -> Iterator[Item]:
    i = 0
    while not stop.is_set():
        t0 = time.perf_counter_ns()
        ok, frame = cap.read()
        if not ok:
            return
        dec = (time.perf_counter_ns() - t0) / 1e6
        stats.frames += 1
        item = feed.from_frame(frame, f"{name}#{i}")
        item.decode_ms = dec
        i += 1
        yield item


def _open_capture(what: Path | int):
    import cv2

    from .runtime import captured_stderr

    with captured_stderr():  # OpenCV's backends log their failures on stderr
        cap = cv2.VideoCapture(str(what) if isinstance(what, Path) else what)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        if isinstance(what, Path):
            raise DataError(f"video {what} cannot be opened", "check that it is a video file OpenCV can decode (mp4, avi, mkv)")
        raise DataError(f"camera {what} cannot be opened", "check that it is connected and not in use (see `keras-edge doctor`)")
    return cap


def produce(plan: list[tuple[str, Path | int]], feed: Feed, stop: threading.Event, stats: StreamStats,
            max_frames: int | None = None) -> Iterator[Item]:
    """Every item of every source, in order; per-file failures become items with an error."""
    for kind, what in plan:
        if stop.is_set():
            return
        try:
            if kind == "image":
                yield feed.from_bytes(read_bytes(what), str(what))
            elif kind == "arrays":
                yield from feed.from_arrays(str(what), load_arrays(what))
            else:
                cap = _open_capture(what)
                name = str(what) if kind == "video" else f"camera{what}"
                stats.streams.append(name)
                try:
                    frames = _video_frames(cap, name, feed, stop, stats)
                    for n, item in enumerate(frames):
                        yield item
                        if max_frames is not None and n + 1 >= max_frames:
                            break
                finally:
                    cap.release()
        except EdgeError as e:
            yield Item(name=str(what) if kind != "camera" else f"camera{what}", error=str(e))


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """``.npy`` → {"input_0": array}; ``.npz`` → its arrays. Never unpickles."""
    try:
        if path.suffix.lower() == ".npy":
            return {"input_0": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable numpy file ({str(e).splitlines()[0][:120]})",
                        "give .npy/.npz files saved with numpy (no pickled objects)") from None


class Prefetch:
    """Run a producer on a thread; iterate its items. Live producers drop the oldest when full."""

    def __init__(self, items: Iterator[Item], stats: StreamStats, stop: threading.Event,
                 live: bool = False, depth: int = 4):
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._items, self._stats, self._stop, self._live = items, stats, stop, live
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="keras-edge-decode", daemon=True)
        self._done = object()

    def _put(self, item) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._live and item is not self._done:
                    try:
                        self._q.get_nowait()
                        self._stats.dropped += 1
                    except queue.Empty:
                        pass

    def _work(self) -> None:
        try:
            for item in self._items:
                self._put(item)
                if self._stop.is_set():
                    break
        except BaseException as e:  # re-raised on the consumer's thread
            self._error = e
        finally:
            self._put(self._done)

    def __iter__(self) -> Iterator[Item]:
        self._thread.start()
        try:
            while True:
                item = self._q.get()
                if item is self._done:
                    break
                yield item
        finally:
            self._stop.set()
            self._thread.join(timeout=5)
        if self._error is not None:
            raise self._error
