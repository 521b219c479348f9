"""What ``run`` reads: image files and folders, ``.npy``/``.npz`` arrays, video files and cameras.

Every input becomes a :class:`~.workers.Job` for the run pipeline (:mod:`.workers`): image files and
arrays are read, decoded and preprocessed by the workers; video and camera frames are decoded here,
on the reader (a stream decodes in order), and preprocessed by the workers. Folders are walked
lazily, so a folder of 100,000 images is never listed in memory at once. Files and video frames are
never dropped; a camera, or a video read at its own frame rate (``realtime``), is live: the pipeline
drops its oldest waiting frame when inference falls behind, and every frame carries its capture time.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from ..contract.errors import DataError, EdgeError
from ..contract.files import check_arrays, regular, walk
from ..contract.limits import limits, too_many
from ..inputs.images import is_image, read_bytes
from .types import Feed, Item, Job, StreamStats

VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})


def _kind(p: Path) -> str:
    ext = p.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in ARRAY_EXTENSIONS:
        return "arrays"
    return "image"


def _walk(root: Path) -> Iterator[Path]:
    """Files under ``root``, recursively, sorted; hidden entries skipped, symlink loops cut (as the image walk does)."""
    return walk(root)


def _found(root: Path) -> Iterator[Path]:
    return (f for f in _walk(root) if _kind(f) == "video" or (_kind(f) == "image" and is_image(f)))


def plan_sources(sources: Iterable[str], camera: int | None) -> list[tuple[str, Path | int]]:
    """Classify every source; refuse a missing path, an empty folder or a camera up front.

    Folders stay ``("folder", path)``: :func:`expand` walks them lazily while the run goes on.
    """
    out: list[tuple[str, Path | int]] = []
    for src in sources:
        p = Path(src)
        if not p.exists():
            raise DataError(f"{src}: no such file or folder", "check the path")
        if p.is_dir():
            if next(_found(p), None) is None:
                raise DataError(f"{src} contains no images or videos",
                                "give a folder with jpg/png/bmp/webp/tiff images or mp4/avi/mkv videos")
            out.append(("folder", p))
        else:
            out.append((_kind(p), p))
    if camera is not None:
        out.append(("camera", open_camera_check(camera)))
    if not out:
        raise DataError("nothing to run on", "give image files, folders, video files, .npy/.npz files or a camera")
    return out


def holds_video(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a video file or a folder with one (walked only until the first)."""
    p = Path(source)
    if p.is_dir():
        return any(_kind(f) == "video" for f in _walk(p))
    return _kind(p) == "video"


def expand(plan: Iterable[tuple[str, Path | int]]) -> Iterator[tuple[str, Path | int]]:
    """The plan with every folder replaced by its images and videos, in sorted order, lazily."""
    for kind, what in plan:
        if kind == "folder":
            yield from ((_kind(f), f) for f in _found(what))
        else:
            yield kind, what


def open_camera_check(index: int) -> int:
    if index < 0:
        raise DataError(f"camera {index} is not a valid index", "cameras are numbered from 0 (see `keras-edge doctor`)")
    if os.path.isdir("/dev") and os.name == "posix" and not os.path.exists(f"/dev/video{index}"):
        raise DataError(f"camera {index} does not exist (no /dev/video{index})",
                        "list the cameras with `keras-edge doctor`")
    return index


def _frames(cap, name: str, feed: Feed, stop: threading.Event, stats: StreamStats, live: bool,
            realtime: bool, max_frames: int | None) -> Iterator["Job"]:
    """A stream's frames as jobs: decoded here, preprocessed by a worker (an MJPEG AVI's frames are only cut
    out of the file here and decoded by the workers, like JPEG files: :mod:`.avi`).

    ``realtime``: frames come due at the video's own rate, as from a camera; a frame whose time has
    passed while an earlier one was being read is skipped (grabbed, not converted) and counted as dropped.
    """

    source_fps = float(cap.get(5) or 0.0)                # 5: cv2.CAP_PROP_FPS
    fps = source_fps if realtime else 0.0
    period = int(1e9 / fps) if fps > 0 else int(1e9 / 30)
    start, i = None, 0
    while not stop.is_set() and (max_frames is None or i < max_frames):
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
        if isinstance(frame, bytes):   # an MJPEG frame still compressed: a worker decodes it (see .avi)
            make = _decode_packet(feed, frame, f"{name}#{i}", source_fps)
        else:
            make = _preprocess_frame(feed, frame, f"{name}#{i}", (t1 - t0) / 1e6, source_fps)
        yield Job(f"{name}#{i}", make, captured, live)
        i += 1


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


def _open_packets(path: Path):
    """An MJPEG AVI's frames as JPEG bytes for the workers to decode (None: any other video, read by OpenCV)."""
    from ..inputs.avi import open_packets

    return open_packets(path) if isinstance(path, Path) and path.suffix.lower() == ".avi" else None


def _open_capture(what: Path | int):
    import cv2

    from ..engine.runtime import captured_stderr

    with captured_stderr():  # OpenCV's backends log their failures on stderr
        cap = cv2.VideoCapture(str(what) if isinstance(what, Path) else what)
        opened = cap.isOpened()
    if not opened:
        cap.release()
        if isinstance(what, Path):
            raise DataError(f"video {what} cannot be opened", "check that it is a video file OpenCV can decode (mp4, avi, mkv)")
        raise DataError(f"camera {what} cannot be opened", "check that it is connected and not in use (see `keras-edge doctor`)")
    w, h = int(cap.get(3) or 0), int(cap.get(4) or 0)   # CAP_PROP_FRAME_WIDTH, _HEIGHT: before a frame is decoded
    if w * h > limits().max_pixels:
        cap.release()
        raise DataError(*too_many(f"{what}'s frames are {w}x{h},", w * h, "max_pixels", "pixels"))
    return cap


def jobs(plan: Iterable[tuple[str, Path | int]], feed: Feed, stop: threading.Event, stats: StreamStats,
         max_frames: int | None = None, realtime: bool = False) -> Iterator["Job"]:
    """Every input of every source, in order, as worker jobs; a source that fails becomes one error item."""

    for kind, what in expand(plan):
        if stop.is_set():
            return
        name = str(what) if kind != "camera" else f"camera{what}"
        if kind == "image" and feed.undecided():   # decided on the first image that can, in input order
            try:
                data = read_bytes(what)
                item = feed.decide(data, name)
            except EdgeError as e:
                yield Job(name, _fail(e))
                continue
            yield Job(name, (lambda it=item: [it]) if item else (lambda d=data, n=name: [feed.from_bytes(d, n)]))
        elif kind == "image":
            yield Job(name, lambda p=what, n=name: [feed.from_bytes(read_bytes(p), n)])
        elif kind == "arrays":
            yield Job(name, lambda p=what, n=name: feed.from_arrays(n, load_arrays(p)))
        else:
            try:
                if kind == "video":
                    regular(what)   # a FIFO or device named x.avi would block the open
                cap = (_open_packets(what) if kind == "video" else None) or _open_capture(what)
            except EdgeError as e:
                yield Job(name, _fail(e))
                continue
            stats.streams.append(name)
            try:
                yield from _frames(cap, name, feed, stop, stats, live=kind == "camera",
                                   realtime=realtime and kind == "video", max_frames=max_frames)
            finally:
                cap.release()


def _fail(e: EdgeError) -> Callable[[], list[Item]]:
    def make() -> list[Item]:
        raise e
    return make


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """``.npy`` → {"input_0": array}; ``.npz`` → its arrays. Never unpickles; sizes checked from the headers first."""
    check_arrays(path, str(path))
    try:
        if path.suffix.lower() == ".npy":
            return {"input_0": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable numpy file ({str(e).splitlines()[0][:120]})",
                        "give .npy/.npz files saved with numpy (no pickled objects)") from None
