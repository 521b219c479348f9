"""Reading files that may come from anyone: regular files only, bounded, and folder walks that end.

- :func:`read_regular` refuses a FIFO, a device, a socket or a symlink to one *before* opening it
  (``os.stat`` + ``S_ISREG``), opens with ``O_NONBLOCK`` (a FIFO swapped in between cannot block the
  open) and checks again on the open descriptor; it reads at most the limit it is given.
- :func:`walk` lists a folder tree in a stable order, follows symlinked folders but enters each real
  folder once (by device and inode), so ``a/up -> ..`` neither repeats files nor loops, and stops at
  :attr:`~.limits.Limits.max_folder_depth`.
- :func:`read_json` and :func:`check_arrays` bound what JSON and ``.npy``/``.npz`` files may cost
  before they are parsed or loaded (see :mod:`.limits`).
- :func:`replace_file` writes the other way: a new file beside the target, renamed over it.

This is the contract room's: the bundle reader, the inputs, the runner and calibration all use it.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Iterator

from .errors import DataError, EdgeError
from .limits import json_depth, limits, too_many

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _error(error: type[EdgeError], what: str, fix: str) -> EdgeError:
    return error(what, fix)


def regular(path: str | os.PathLike, error: type[EdgeError] = DataError) -> os.stat_result:
    """``os.stat`` of ``path`` (symlinks followed), refusing anything but a regular file; nothing is opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise _error(error, f"{path}: no such file", "check the path") from None
    except PermissionError:
        raise _error(error, f"{path}: permission denied", "check the file's permissions") from None
    except OSError as e:   # ELOOP (a symlink loop), ENAMETOOLONG, EIO…
        raise _error(error, f"{path} cannot be read ({e.strerror or e})", "check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise _error(error, f"{path} is a directory", "give a file")
    if not stat.S_ISREG(st.st_mode):
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise _error(error, f"{path} is {kind}, not a regular file",
                     "give a regular file: keras-edge never reads pipes, devices or sockets")
    return st


def read_regular(path: str | os.PathLike, max_bytes: int, field: str, error: type[EdgeError] = DataError) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (limit ``field`` of :class:`.limits.Limits`)."""
    st = regular(path, error)
    if st.st_size > max_bytes:
        raise _error(error, *too_many(f"{path} is", st.st_size, field, "bytes", max_bytes))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags)
    except PermissionError:
        raise _error(error, f"{path}: permission denied", "check the file's permissions") from None
    except OSError as e:
        raise _error(error, f"{path} cannot be read ({e.strerror or e})", "check the path") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):   # swapped for something else since the stat above
            raise _error(error, f"{path} is not a regular file", "give a regular file")
        chunks, total = [], 0
        while total <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise _error(error, f"{path} cannot be read ({e.strerror or e})", "check the file") from None
    finally:
        os.close(fd)
    if total > max_bytes:   # it grew while being read
        raise _error(error, *too_many(f"{path} grew to", total, field, "bytes", max_bytes))
    return b"".join(chunks)


def read_text(path: str | os.PathLike, max_bytes: int, field: str, error: type[EdgeError] = DataError) -> str:
    """A bounded regular file as UTF-8 text (a byte that is not UTF-8 is one clear error)."""
    data = read_regular(path, max_bytes, field, error)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _error(error, f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})",
                     "save it as UTF-8") from None


def read_json(path: str | os.PathLike, what: str, fix: str, error: type[EdgeError] = DataError) -> Any:
    """A JSON document from a regular file, bounded in size and nesting; any fault is one ``error``."""
    lim = limits()
    text = read_text(path, lim.max_json_bytes, "max_json_bytes", error)
    return parse_json(text, what, fix, error)


def parse_json(text: str | bytes, what: str, fix: str, error: type[EdgeError] = DataError) -> Any:
    """``json.loads`` of untrusted text, refusing nesting deeper than the limit before parsing."""
    lim = limits()
    if len(text) > lim.max_json_bytes:
        raise _error(error, *too_many(f"{what} is", len(text), "max_json_bytes", "bytes"))
    depth = json_depth(text)
    if depth > lim.max_json_depth:
        raise _error(error, *too_many(f"{what} nests", depth, "max_json_depth", "levels deep"))
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:   # JSONDecodeError, bad UTF-8, a 5,000-digit number
        raise _error(error, f"{what} is not valid JSON ({str(e).splitlines()[0][:160]})", fix) from None


def check_arrays(path: str | os.PathLike, what: str, error: type[EdgeError] = DataError) -> None:
    """Refuse an ``.npy``/``.npz`` whose arrays would take more than ``max_array_bytes`` once loaded.

    Read from the headers only: an ``.npz``'s zip directory (each member's inflated size) and each
    ``.npy`` header's shape and dtype, so a 1.8 MB file that inflates to 1.9 GB is refused unloaded.
    """
    import numpy as np
    from numpy.lib import format as npformat

    lim = limits().max_array_bytes
    st = regular(path, error)

    def header(f) -> int:
        version = npformat.read_magic(f)
        reader = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, _, dtype = reader(f)
        count = 1
        for d in shape:
            count *= int(d)
        return count * np.dtype(dtype).itemsize

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                infos = z.infolist()
                inflated = sum(i.file_size for i in infos)
                if inflated > lim:
                    raise _error(error, *too_many(f"{what} inflates to", inflated, "max_array_bytes", "bytes"))
                total = 0
                for info in infos:
                    if info.filename.endswith(".npy"):
                        with z.open(info) as f:
                            total += header(f)
        else:
            with open(path, "rb", buffering=0) as f:
                total = header(f)
            total = max(total, st.st_size)
    except EdgeError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, TypeError) as e:
        raise _error(error, f"{what} is not a readable NumPy file ({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})",
                     "save it with numpy.save/savez (no pickled objects)") from None
    if total > lim:
        raise _error(error, *too_many(f"{what} holds arrays of", total, "max_array_bytes", "bytes"))


def walk(root: str | os.PathLike) -> Iterator[Path]:
    """Every non-folder entry under ``root``, recursively, in a stable (sorted) order; hidden entries skipped.

    Symlinked folders are followed, but each real folder (device, inode) is entered once, so a link
    back up the tree (``a/up -> ..``) adds nothing and cannot loop. Deeper than ``max_folder_depth``
    folders is one error. Entries are not opened: a FIFO or device named ``x.png`` is listed here and
    refused by :func:`read_regular` when read.
    """
    root = Path(root)
    max_depth = limits().max_folder_depth
    seen: set[tuple[int, int]] = set()
    try:
        st = os.stat(root)
        seen.add((st.st_dev, st.st_ino))
    except OSError:
        return
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError:   # unreadable subfolder: skipped, as os.walk does
            continue
        subfolders = []
        for e in entries:
            try:
                is_dir = e.is_dir()   # follows a symlink
            except OSError:
                is_dir = False
            if not is_dir:
                yield Path(e.path)
                continue
            try:
                sub = os.stat(e.path)
            except OSError:
                continue
            key = (sub.st_dev, sub.st_ino)
            if key in seen:           # a symlink loop, or a second link to a folder already walked
                continue
            seen.add(key)
            subfolders.append(Path(e.path))
        if subfolders and depth + 1 > max_depth:
            raise DataError(*too_many(f"{root} nests folders (at {subfolders[0]})", depth + 1,
                                      "max_folder_depth", "levels deep"))
        stack.extend((p, depth + 1) for p in reversed(subfolders))


def replace_file(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to a new file beside ``path`` and rename it over ``path``: an interrupted write
    leaves the old file whole, and a reader that holds the old one (LiteRT maps a model file shared, MAP_SHARED)
    keeps its bytes instead of seeing them rewritten under it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)
    return path
