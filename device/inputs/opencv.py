"""OpenCV, imported on first use (`keras-edge --help` and every JSON-only path should not pay for it), with its
own console warnings off: a bad file is reported once, by us, as one line."""

from __future__ import annotations

from types import ModuleType

_QUIET: list[bool] = []


def cv2() -> ModuleType:
    import cv2 as _cv2

    if not _QUIET:
        try:
            _cv2.setLogLevel(2)  # ERROR: no "[ WARN:0@…] imdecode_(…)" lines on corrupt files
        except AttributeError:   # very old OpenCV builds
            pass
        _QUIET.append(True)
    return _cv2
