"""``.npy``/``.npz`` files: model inputs as arrays (no decoding); never unpickled."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ...contract.errors import DataError
from ...contract.files import check_arrays
from ..types import Job
from .base import Context, Source

ARRAY_EXTENSIONS = frozenset({".npy", ".npz"})


class ArrayFile(Source):
    kind = "arrays"
    description = ".npy/.npz arrays"
    in_folders = False   # named one by one: a folder's .npy/.npz files are often not inputs
    decodes = False

    @classmethod
    def claims(cls, path: Path) -> bool:
        return path.suffix.lower() in ARRAY_EXTENSIONS

    def jobs(self, ctx: Context) -> Iterator[Job]:
        yield Job(self.name, lambda p=self.what, n=self.name: ctx.feed.from_arrays(n, load_arrays(p)))


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
