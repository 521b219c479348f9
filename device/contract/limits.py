"""Limits on what keras-edge reads from files it did not write: one place, each overridable.

A board has 1–8 GB of memory, and a bundle, a model or an input may come from anyone. Every read of
such data is bounded *before* the expensive step: an image's pixel count from its header before it
is decoded, a side file's size before it is read, an ``.npz``'s inflated size from its zip headers
before it is loaded, a JSON document's nesting before it is parsed, a folder walk's depth.

Each limit has a default a Raspberry Pi can live with and an environment variable that overrides it
(``KERAS_EDGE_`` + the field name in capitals, e.g. ``KERAS_EDGE_MAX_PIXELS=200000000``). The
variables are read on every call of :func:`limits`, so a test or a long-lived process can change them.
``docs/SECURITY.md`` lists them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

from .errors import DataError, EdgeError

MIB = 1 << 20
PREFIX = "KERAS_EDGE_"


class LimitError(DataError):
    """Input data above one of the limits (it may be fine, but this board will not risk reading it)."""


@dataclass(frozen=True)
class Limits:
    """Upper bounds on untrusted data (all positive integers)."""

    # decoded pixels of one image or video frame: 100 MP (a 10000x10000 scan) is 300 MB as 8-bit BGR
    max_pixels: int = 100_000_000
    # one input file (image, video frame list entry, .npy) read into memory whole
    max_image_bytes: int = 256 * MIB
    # manifest.json, report.json, a board's bench JSON
    max_json_bytes: int = 32 * MIB
    # arrays and objects nested in one JSON document (a manifest needs 6, a report about 8)
    max_json_depth: int = 64
    # inflated size of an .npz or .npy (reference.npz, anchors, embeddings, run's array inputs)
    max_array_bytes: int = 512 * MIB
    # labels.txt: file size, lines and characters per line (ImageNet-21k has 21,843 classes)
    max_labels_bytes: int = 16 * MIB
    max_labels: int = 100_000
    max_label_chars: int = 1_000
    # folders nested inside one input folder (symlink loops are cut separately, by device and inode)
    max_folder_depth: int = 64
    # containers nested inside one file (an AVI's LIST chunks; real files nest 3 or 4 deep)
    max_nesting: int = 32
    # a model's first inference in its trial run (a forked child, before the model is loaded for real)
    max_trial_seconds: int = 120

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EdgeError(f"limit {f.name} is {value!r}, not a positive whole number",
                                f"give a positive whole number (the default is {f.default})")

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable that overrides field ``name``."""
        return PREFIX + name.upper()


def limits(environ: dict[str, str] | None = None) -> Limits:
    """The limits in force: the defaults, each overridden by its environment variable when set."""
    env = os.environ if environ is None else environ
    values: dict[str, int] = {}
    for f in dataclasses.fields(Limits):
        var = Limits.variable(f.name)
        text = env.get(var)
        if text is None or not text.strip():
            continue
        try:
            values[f.name] = int(text.strip().replace("_", ""))
        except ValueError:
            raise EdgeError(f"{var}={text!r} is not a whole number", f"unset it, or give e.g. {var}={f.default}") from None
        if values[f.name] < 1:
            raise EdgeError(f"{var}={text!r} is not positive", f"unset it, or give e.g. {var}={f.default}")
    return Limits(**values)


def too_many(what: str, value: int, field: str, unit: str = "", limit: int | None = None) -> tuple[str, str]:
    """(what, fix) for a value above limit ``field`` (the one in force, unless ``limit`` says which):
    "``what`` 1,234 bytes, above the limit of 1,000 bytes", and the fix names the variable that raises it."""
    lim = getattr(limits(), field) if limit is None else limit
    unit = f" {unit}" if unit else ""
    return (f"{what} {value:,}{unit}, above the limit of {lim:,}{unit}",
            f"if you trust it, raise the limit with {Limits.variable(field)}=N")


_STRING = re.compile(rb'"(?:[^"\\\\]+|\\\\.)*"?', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(text: str | bytes) -> int:
    """How deeply arrays and objects nest in a JSON text, counted without parsing it (strings skipped).

    Python's ``json`` recurses once per level, so a document nested 200,000 deep would end in a
    RecursionError; this linear scan lets the reader refuse it first.
    """
    import numpy as np

    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    b = np.frombuffer(brackets, np.uint8)
    steps = np.where((b == 0x5B) | (b == 0x7B), 1, -1).astype(np.int64)
    return int(np.cumsum(steps).max())
