"""Image files (jpg, png, bmp, webp, tiff): read and decoded by the workers."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...contract.errors import EdgeError
from ...inputs.images import IMAGE_EXTENSIONS, read_bytes
from ..types import Job
from .base import Context, Source, fail


class ImageFile(Source):
    kind = "image"
    description = "jpg/png/bmp/webp/tiff images"

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.suffix.lower() in IMAGE_EXTENSIONS

    def jobs(self, ctx: Context) -> Iterator[Job]:
        path, name, feed = self.what, self.name, ctx.feed
        if feed.undecided():   # decided on the first image that can, in input order
            try:
                data = read_bytes(path)
                item = feed.decide(data, name)
            except EdgeError as e:
                yield Job(name, fail(e))
                return
            yield Job(name, (lambda it=item: [it]) if item else (lambda d=data, n=name: [feed.from_bytes(d, n)]))
        else:
            yield Job(name, lambda p=path, n=name: [feed.from_bytes(read_bytes(p), n)])
