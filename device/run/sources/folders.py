"""Folders: walked lazily and in sorted order (a folder of 100,000 images is never listed in memory at once);
each file is read by the source that claims it. Hidden entries are skipped, as the image walk does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def walk(root: Path) -> Iterator[Path]:
    """Files under ``root``, recursively, sorted; hidden entries skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath) / n for n in sorted(filenames) if not n.startswith("."))
