"""What ``run`` reads, behind a registry: each kind of source is one file, registered in :data:`SOURCES`.

A source the user names is offered to the sources in registry order: a name that is no file (``camera:0``,
a stream address) to :meth:`~.base.Source.claims_name`, a file to :meth:`~.base.Source.claims` (by its
name), a folder's files one by one. Adding a source (an RTSP stream, a Pi camera through picamera2) is a
file with a :class:`~.base.Source` subclass and one line below; the runner, its pipeline and its summary
need no change.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Iterator

from ...contract.errors import DataError
from ..types import Job
from .arrays import ARRAY_EXTENSIONS, ArrayFile, load_arrays
from .base import Context, Source
from .camera import Camera
from .folders import walk
from .images import ImageFile
from .video import VIDEO_EXTENSIONS, VideoFile

SOURCES: dict[str, type[Source]] = {s.kind: s for s in (ImageFile, ArrayFile, VideoFile, Camera)}

__all__ = ["ARRAY_EXTENSIONS", "SOURCES", "VIDEO_EXTENSIONS", "Context", "Folder", "Source", "holds_video", "jobs",
           "decodes", "load_arrays", "plan_sources"]


def source_for(path: Path) -> type[Source] | None:
    """The registered source that reads this file, if any."""
    return next((s for s in SOURCES.values() if s.claims(path)), None)


class Folder(Source):
    """A folder: every file in it that a registered source claims, in sorted order, walked lazily."""

    kind = "folder"

    def contents(self) -> Iterator[Source]:
        for f in walk(Path(self.what)):
            cls = source_for(f)
            if cls is not None and cls.in_folders:
                yield cls(f)

    def jobs(self, ctx: Context) -> Iterator[Job]:
        for src in self.contents():
            if ctx.stop.is_set():
                return
            yield from src.jobs(ctx)


def _kinds() -> str:
    return ", ".join(s.description for s in SOURCES.values() if s.description)


def plan_sources(sources: Iterable[str], camera: int | None = None) -> list[Source]:
    """Every source the user named, classified; a missing path, an empty folder or a camera refused up front."""
    out: list[Source] = []
    for src in sources:
        named = next((s for s in SOURCES.values() if s.claims_name(str(src))), None)
        if named is not None:
            out.append(named(str(src)))
            continue
        p = Path(src)
        if not p.exists():
            raise DataError(f"{src}: no such file or folder", "check the path")
        if p.is_dir():
            folder = Folder(p)
            if next(folder.contents(), None) is None:
                raise DataError(f"{src} contains nothing to run on", f"give a folder with {_kinds()}")
            out.append(folder)
        else:
            out.append((source_for(p) or ImageFile)(p))   # an unknown suffix is tried as an image (one error line)
    if camera is not None:
        out.append(Camera(camera))
    if not out:
        raise DataError("nothing to run on", f"give {_kinds()}, folders of them, or --camera N")
    return out


def holds_video(source: str | os.PathLike) -> bool:
    """Whether ``source`` is a stream (a video file, a camera) or a folder with a video (walked until the first)."""
    named = next((s for s in SOURCES.values() if s.claims_name(str(source))), None)
    if named is not None:
        return named.stream
    p = Path(source)
    if p.is_dir():
        return any(getattr(source_for(f), "stream", False) for f in walk(p))
    return getattr(source_for(p), "stream", False)


def decodes(source: str | os.PathLike) -> bool:
    """Whether ``source`` needs decoding (images, video, a camera, a folder) rather than holding arrays."""
    named = next((s for s in SOURCES.values() if s.claims_name(str(source))), None)
    if named is not None:
        return named.decodes
    cls = source_for(Path(source))
    return cls is None or cls.decodes


def jobs(plan: Iterable[Source], ctx: Context) -> Iterator[Job]:
    """Every input of every source, in order, as worker jobs; a source that fails becomes one error item."""
    for src in plan:
        if ctx.stop.is_set():
            return
        yield from src.jobs(ctx)
