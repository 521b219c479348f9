"""Detection heads, one file each, registered here by name: the names are ``--head`` choices and the
manifest's ``postprocess.head``. Adding a head is a file with a :class:`Head` subclass and one line below."""

from __future__ import annotations

from .base import Head
from .ssd import Ssd
from .tflite_postprocess import TflitePostprocess
from .yolo import Yolo

HEADS: dict[str, type[Head]] = {h.name: h for h in (Yolo, Ssd, TflitePostprocess)}

__all__ = ["HEADS", "Head"]
