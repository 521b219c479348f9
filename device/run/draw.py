"""``run --draw DIR``: results drawn on the inputs (OpenCV only).

Images become annotated images named after the input's stem (written atomically: temp file, then
``os.replace``); each video or camera stream becomes one annotated ``.mp4`` (``mp4v``, the source's frame
rate) written under a temporary name and moved into place when the run ends, Ctrl-C included.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from ..outputs.postprocess import UNKNOWN, TaskResult
from ..contract.bundle import current_umask
from ..contract.errors import EdgeError
from ..contract.files import read_text
from ..contract.limits import limits
from ..contract.tasks import Task

from .types import Item, Result
from ..inputs.opencv import cv2 as _cv2

# a fixed palette (BGR), so a class keeps its colour across images and runs
PALETTE = np.array([(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72),
                    (23, 204, 146), (134, 219, 61), (52, 147, 26), (187, 212, 0), (168, 153, 44), (255, 194, 0),
                    (147, 69, 52), (255, 115, 100), (236, 24, 0), (255, 56, 132), (133, 0, 82), (255, 56, 203),
                    (200, 149, 255), (199, 55, 255)], np.uint8)


def colour(c: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in PALETTE[c % len(PALETTE)])


def _name(c: int, labels: Sequence[str] | None) -> str:
    return labels[c] if labels is not None and 0 <= c < len(labels) else f"class {c}"


def _text(img: np.ndarray, text: str, x: int, y: int, bg: tuple[int, int, int]) -> None:
    cv2 = _cv2()
    scale = max(0.4, min(img.shape[:2]) / 600)
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    y = max(th + base, y)
    cv2.rectangle(img, (x, y - th - base), (x + tw, y), bg, -1)
    cv2.putText(img, text, (x, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)


def annotate(image: np.ndarray, result: Result, labels: Sequence[str] | None = None,
             hw: tuple[int, int] | None = None) -> np.ndarray:
    """A copy of ``image`` (BGR or gray, uint8) with the result drawn on it.

    ``hw``: the (h, w) the result's boxes and mask refer to when ``image`` is smaller (decoded reduced).
    """
    cv2 = _cv2()
    img = image
    if img.dtype != np.uint8:
        img = np.clip(img.astype(np.float64) / (65535.0 if img.dtype == np.uint16 else 1.0) * 255, 0, 255).astype(np.uint8)
    if img.ndim == 2 or img.shape[2] == 1:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    else:
        img = img.copy()
    t: TaskResult | None = result.task
    sy, sx = (img.shape[0] / hw[0], img.shape[1] / hw[1]) if hw else (1.0, 1.0)
    if result.top:
        p = result.top[0]
        _text(img, f"{p.label if p.label is not None else f'class {p.index}'} {p.score:.2f}", 0, 0, (40, 40, 40))
    elif t is not None and t.task is Task.SEGMENTATION and t.class_map is not None:
        cm = t.class_map
        if cm.shape[:2] != img.shape[:2]:
            cm = cv2.resize(cm, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
        known = cm != UNKNOWN
        over = PALETTE[np.where(known, cm, 0) % len(PALETTE)]
        blend = cv2.addWeighted(img, 0.5, over, 0.5, 0)
        img[known] = blend[known]
    elif t is not None and t.detections is not None:
        thick = max(1, int(round(min(img.shape[:2]) / 300)))
        for d in t.detections:
            x1, y1, x2, y2 = (int(round(v * k)) for v, k in zip(d.box, (sx, sy, sx, sy)))
            c = colour(d.class_id)
            cv2.rectangle(img, (x1, y1), (x2, y2), c, thick)
            _text(img, f"{d.label or _name(d.class_id, labels)} {d.score:.2f}", x1, y1, c)
    elif t is not None and t.matches:
        n, s = t.matches[0]
        _text(img, f"{n} {s:.2f}", 0, 0, (40, 40, 40))
    elif result.raw is not None:
        m = next((o for o in result.raw if map_of(o) is not None), None)
        if m is not None:
            img = overlay_map(img, map_of(m))
    return img


def map_of(output: np.ndarray) -> np.ndarray | None:
    """The (H, W) map of a (1, H, W, 1) or (1, H, W) output; None for any other shape."""
    a = np.asarray(output)
    if a.ndim == 4 and a.shape[0] == 1 and a.shape[-1] == 1:
        a = a[0, ..., 0]
    elif a.ndim == 3 and a.shape[0] == 1 and min(a.shape[1:]) > 1:
        a = a[0]
    else:
        return None
    return a if min(a.shape) >= 2 else None


def overlay_map(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The map stretched to the image, min–max normalised, colour-mapped (TURBO) and blended half over it."""
    cv2 = _cv2()
    m = m.astype(np.float32)
    lo, hi = float(m.min()), float(m.max())
    u8 = np.zeros(m.shape, np.uint8) if hi - lo < 1e-12 else ((m - lo) / (hi - lo) * 255).astype(np.uint8)
    colour_map = cv2.applyColorMap(cv2.resize(u8, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_LINEAR),
                                   cv2.COLORMAP_TURBO)
    out = cv2.addWeighted(img, 0.5, colour_map, 0.5, 0)
    _text(out, f"map {lo:.3g}..{hi:.3g}", 0, 0, (40, 40, 40))
    return out


def _atomic_image(path: Path, img: np.ndarray) -> None:
    cv2 = _cv2()
    ok, buf = cv2.imencode(path.suffix, img)
    if not ok:
        ok, buf = cv2.imencode(".png", img)
        path = path.with_suffix(".png")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buf.tobytes())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# The names a draw wrote into its folder, so that a later draw may replace them and nothing else:
# a file of the same name that keras-edge did not draw (the user's own) is never overwritten.
DRAWN = ".keras-edge-drawn"


class Drawer:
    """Draws each result on its input as the run goes; :meth:`close` finalises the videos."""

    def __init__(self, out: Path, labels: Sequence[str] | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.labels = labels
        self.ours = self._drawn_before()
        self.videos: dict[str, tuple[object, Path, Path]] = {}   # stream → (writer, temp path, final path)
        self.used: set[str] = set()
        self.written: list[Path] = []
        self.notes: list[str] = []
        self._raw_noted = False

    def _unique(self, stem: str, ext: str, source: str) -> Path:
        """DIR/<stem><ext>, numbered when two inputs share a stem; never the input file itself."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:80] or "input"
        try:
            src = Path(source).resolve()
        except (OSError, RuntimeError):
            src = None
        name, n = f"{safe}{ext}", 1
        while name in self.used or (src is not None and (self.out / name).resolve() == src) or self._foreign(name):
            n += 1
            name = f"{safe}-{n}{ext}"
        self.used.add(name)
        return self.out / name

    def _foreign(self, name: str) -> bool:
        """A file of that name is in the folder and no draw wrote it: the user's, not to be replaced."""
        return os.path.lexists(self.out / name) and name not in self.ours

    def _drawn_before(self) -> set[str]:
        try:
            text = read_text(self.out / DRAWN, limits().max_labels_bytes, "max_labels_bytes")
        except EdgeError:
            return set()
        return {ln for ln in text.splitlines() if ln and "/" not in ln}

    def _remember(self) -> None:
        names = sorted(self.ours | {p.name for p in self.written})
        fd, tmp = tempfile.mkstemp(prefix=f"{DRAWN}.", dir=self.out)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{n}\n" for n in names))
        os.replace(tmp, self.out / DRAWN)

    def add(self, item: Item, result: Result) -> None:
        if item.image is None:     # arrays: no picture to draw on
            return
        if result.raw is not None and not any(map_of(o) is not None for o in result.raw) and not self._raw_noted:
            self._raw_noted = True
            shapes = ", ".join(str(tuple(np.shape(o))) for o in result.raw)
            self.notes.append(f"--draw: the outputs {shapes} are neither a class, a task result nor a map (1,H,W,1) or "
                              "(1,H,W); the images are written without annotation")
        img = annotate(item.image, result, self.labels)
        if item.fps is not None:                      # a video or camera frame, named "<stream>#<index>"
            self._frame(item.name.rpartition("#")[0] or item.name, img, item.fps)
            return
        ext = Path(item.name).suffix.lower()
        path = self._unique(Path(item.name).stem, ext if ext in (".jpg", ".jpeg", ".png", ".bmp") else ".png", item.name)
        _atomic_image(path, img)
        self.written.append(path)

    def _frame(self, stream: str, img: np.ndarray, fps: float | None) -> None:
        cv2 = _cv2()
        if stream not in self.videos:
            final = self._unique(Path(stream).stem if not stream.startswith("camera") else stream, ".mp4", stream)
            fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".partial.mp4", dir=self.out)
            os.close(fd)
            tmp = Path(name)
            h, w = img.shape[:2]
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps or 30.0), (w, h))
            if not writer.isOpened():
                writer.release()
                self.notes.append(f"cannot write an annotated video for {stream} (no mp4v encoder in this OpenCV)")
                self.videos[stream] = (None, tmp, final)
            else:
                self.videos[stream] = (writer, tmp, final)
        writer, _, _ = self.videos[stream]
        if writer is not None:
            writer.write(img)  # type: ignore[attr-defined]

    def close(self) -> None:
        for stream, (writer, tmp, final) in list(self.videos.items()):
            if writer is not None:
                writer.release()  # type: ignore[attr-defined]
                if tmp.exists() and tmp.stat().st_size:
                    os.replace(tmp, final)
                    self.written.append(final)
            if tmp.exists():
                tmp.unlink()
        self.videos.clear()
        if self.written:
            self._remember()
