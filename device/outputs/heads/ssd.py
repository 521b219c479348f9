"""SSD-style head: box deltas (1,A,4) [ty,tx,th,tw] against anchors (A,4) [cy,cx,h,w] (normalised, scaled by
``variances``) and class scores (1,A,C); ``background`` says which score column, if any, is background. The
anchors travel in the bundle (``--anchors FILE.npy``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...contract.errors import BundleError
from ...contract.tasks import BoxUnits, ScoreKind
from ..common import sigmoid, softmax
from .base import Head


class Ssd(Head):
    name = "ssd"
    summary = "box deltas (1,A,4) + scores (1,A,1+C) with background in column 0, decoded against --anchors"
    roles = ("deltas", "scores")
    needs_anchors = True

    def __init__(self, post, bundle_dir):
        super().__init__(post, bundle_dir)
        spec = self.spec
        if not spec.anchors:
            raise BundleError("an SSD head's spec has no anchors file", "reconvert the bundle with --anchors")
        d, s = self.shape("deltas"), self.shape("scores")
        if len(d) != 3 or d[-1] != 4 or len(s) != 3 or s[1] != d[1]:
            raise self.misfit(f"the ssd head wants deltas (1,A,4) and scores (1,A,C); the model has {post.describe()}")
        self.anchors = _load_anchors(post.bundle_file(bundle_dir, spec.anchors, "anchors"))
        if self.anchors.shape != (d[1], 4):
            raise self.misfit(f"the anchors are {self.anchors.shape}, the deltas {d}: they need ({d[1]}, 4)",
                              "give the anchors the model was trained with")
        self.classes = s[2] - (1 if spec.background is not None else 0)
        if spec.num_classes is not None and self.classes != spec.num_classes:
            raise self.misfit(f"scores {s} hold {self.classes} classes, the spec says {spec.num_classes}")

    @classmethod
    def roles_for(cls, outputs, options) -> tuple[dict[str, int], dict[str, Any], list[str]]:
        deltas = next((i for i, t in enumerate(outputs) if len(t.shape) == 3 and t.shape[-1] == 4), 0)
        return {"deltas": deltas, "scores": 1 if deltas == 0 else 0}, {}, []

    def num_classes(self) -> int | None:
        return int(self.classes)

    def decode(self, raw, input_hw):
        post, spec, (th, tw) = self.post, self.spec, input_hw
        d = post.raw(raw, "deltas").reshape(-1, 4).astype(np.float64)
        sc = post.raw(raw, "scores").astype(np.float64)
        sc = sc.reshape(sc.shape[-2], sc.shape[-1])
        a, v = self.anchors, spec.variances
        cy = d[:, 0] * v[0] * a[:, 2] + a[:, 0]
        cx = d[:, 1] * v[1] * a[:, 3] + a[:, 1]
        hh = np.exp(np.clip(d[:, 2] * v[2], -20, 20)) * a[:, 2]
        ww = np.exp(np.clip(d[:, 3] * v[3], -20, 20)) * a[:, 3]
        boxes = np.stack([cx - ww / 2, cy - hh / 2, cx + ww / 2, cy + hh / 2], 1)
        if spec.box_units is BoxUnits.NORMALIZED:
            boxes = boxes * np.array([tw, th, tw, th], np.float64)
        if spec.scores is ScoreKind.LOGITS:
            sc = softmax(sc) if spec.background is not None else sigmoid(sc)
        else:   # probabilities rounded onto a quantized output's grid can step past 1
            sc = np.clip(sc, 0.0, 1.0)
        if spec.background is not None:
            sc = np.delete(sc, spec.background, axis=1)
        cls = sc.argmax(1)
        return boxes, sc[np.arange(len(sc)), cls], cls


def _load_anchors(p: Path) -> np.ndarray:
    try:
        a = np.load(p, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise BundleError(f"the anchors file {p} cannot be read ({e})", "write it with numpy.save") from None
    if not isinstance(a, np.ndarray) or a.ndim != 2 or a.shape[1] != 4:
        raise BundleError(f"the anchors file {p} holds {getattr(a, 'shape', 'no array')}, not (A, 4) "
                          f"[cy, cx, h, w]", "write the anchors as an (A, 4) array with numpy.save")
    return a.astype(np.float64)
