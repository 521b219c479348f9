"""YOLO-style dense head: one output (1,N,4+C), or (1,N,5+C) with an objectness column, or transposed
(1,4+C,N) as Ultralytics exports it; boxes [cx,cy,w,h] in ``box_units`` of the model input."""

from __future__ import annotations

import numpy as np

from ...contract.tasks import BoxUnits, ScoreKind
from ..common import sigmoid
from .base import Head


class Yolo(Head):
    name = "yolo"
    summary = "one output (1,N,4+C), (1,N,5+C) with --objectness, or transposed (1,4+C,N); boxes cx,cy,w,h"
    roles = ("predictions",)
    objectness = True

    def __init__(self, post, bundle_dir):
        super().__init__(post, bundle_dir)
        spec, p = self.spec, self.shape("predictions")
        name = post.output("predictions").name
        if len(p) != 3:
            raise self.misfit(f"the yolo head wants one output (1,N,4+C), (1,N,5+C) with objectness or (1,4+C,N); "
                              f"the model has {post.describe()}")
        extra = 5 if spec.objectness else 4
        if spec.num_classes is not None:
            cols = extra + spec.num_classes
            if p[2] == cols:
                self.transposed, self.classes = False, spec.num_classes
            elif p[1] == cols:
                self.transposed, self.classes = True, spec.num_classes
            else:
                raise self.misfit(f"a yolo head with {spec.num_classes} classes"
                                  f"{' and objectness' if spec.objectness else ''} has {cols} values per box; "
                                  f"output {name!r} is {p}")
        else:
            transposed = p[1] < p[2]          # boxes outnumber the values per box
            cols = p[1] if transposed else p[2]
            if cols <= extra:
                raise self.misfit(f"output {name!r} {p} has {cols} values per box: no room for class scores after {extra}")
            self.transposed, self.classes = transposed, cols - extra
            if transposed:
                post.notes.append(f"yolo output {p} read as transposed (1,{extra}+C,N): {cols - extra} classes")

    def num_classes(self) -> int | None:
        return int(self.classes)

    def decode(self, raw, input_hw):
        spec, (th, tw), nc = self.spec, input_hw, self.classes
        p = self.post.raw(raw, "predictions").astype(np.float64)
        p = p.reshape(p.shape[-2], p.shape[-1])
        if self.transposed:
            p = p.T
        box = p[:, :4]
        obj, cl = (p[:, 4], p[:, 5:5 + nc]) if spec.objectness else (None, p[:, 4:4 + nc])
        if spec.scores is ScoreKind.LOGITS:
            cl = sigmoid(cl)
            obj = None if obj is None else sigmoid(obj)
        else:   # probabilities, but a quantized output rounds them onto its grid, a step past 1 included
            cl = np.clip(cl, 0.0, 1.0)
            obj = None if obj is None else np.clip(obj, 0.0, 1.0)
        cls = cl.argmax(1)
        score = cl[np.arange(len(cl)), cls]
        if obj is not None:
            score = score * obj
        if spec.box_units is BoxUnits.NORMALIZED:
            box = box * np.array([tw, th, tw, th], np.float64)
        boxes = np.stack([box[:, 0] - box[:, 2] / 2, box[:, 1] - box[:, 3] / 2,
                          box[:, 0] + box[:, 2] / 2, box[:, 1] + box[:, 3] / 2], 1)
        return boxes, score, cls
