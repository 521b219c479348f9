"""Folders: walked lazily and in sorted order (a folder of 100,000 images is never listed in memory at once);
each file is read by the source that claims it. Hidden entries are skipped and symlink loops cut, as the image
walk does (:func:`keras_edge.device.contract.files.walk`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from ...contract.files import walk as _walk


def walk(root: Path) -> Iterator[Path]:
    """Files under ``root``, recursively, sorted; hidden entries skipped, symlink loops cut."""
    return _walk(root)
