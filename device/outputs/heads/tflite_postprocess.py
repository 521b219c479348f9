"""TFLite's ``TFLite_Detection_PostProcess`` custom op (TF Object Detection API / MediaPipe SSD exports).

Four outputs: boxes (1,N,4) [ymin,xmin,ymax,xmax] in ``box_units`` of the model input, classes (1,N), scores
(1,N) and count (1,). Decoding and NMS already happened inside the model; entries past the count are left-over
memory. Which (1,N) output holds the classes is decided by name when the names say, else at the first
inference (the one of whole numbers).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ...contract.bundle import TensorSpec
from ...contract.tasks import BoxUnits
from .base import Head


def _is_scalar_count(t: TensorSpec) -> bool:
    return tuple(t.shape) in ((1,), ())


def classes_scores(outs: Sequence[TensorSpec], pairs: list[int]) -> tuple[int, int, str]:
    """Which of two (1,N) outputs holds the classes and which the scores, and how that was decided."""
    a, b = pairs
    na, nb = outs[a].name.lower(), outs[b].name.lower()
    if "class" in na and "score" not in na and "score" in nb:
        return a, b, "told apart by name"
    if "class" in nb and "score" not in nb and "score" in na:
        return b, a, "told apart by name"
    # TF OD API exports name them TFLite_Detection_PostProcess:1 (classes) and :2 (scores)
    if "tflite_detection_postprocess" in na and "tflite_detection_postprocess" in nb:
        sa, sb = na.rsplit(":", 1)[-1], nb.rsplit(":", 1)[-1]
        if {sa, sb} == {"1", "2"}:
            return (a, b, "told apart by name") if sa == "1" else (b, a, "told apart by name")
    return a, b, ("classes assumed first as in the TF Object Detection API order; checked at the first "
                  "inference: the output of whole numbers is taken as the classes")


def find_roles(outs: Sequence[TensorSpec]) -> tuple[dict[str, int], str] | None:
    """The four roles when the outputs have this head's shapes, with how classes and scores were told apart."""
    if len(outs) != 4:
        return None
    boxes = [i for i, t in enumerate(outs) if len(t.shape) == 3 and t.shape[-1] == 4]
    count = [i for i, t in enumerate(outs) if _is_scalar_count(t)]
    pairs = [i for i, t in enumerate(outs) if len(t.shape) == 2]
    if len(boxes) != 1 or len(count) != 1 or len(pairs) != 2:
        return None
    n = outs[boxes[0]].shape[1]
    if not all(outs[i].shape[1] in (n, -1) or n == -1 for i in pairs):
        return None
    classes, scores, how = classes_scores(outs, pairs)
    return {"boxes": boxes[0], "classes": classes, "scores": scores, "count": count[0]}, how


class TflitePostprocess(Head):
    name = "tflite_postprocess"
    summary = "TFLite_Detection_PostProcess outputs: boxes (1,N,4), classes (1,N), scores (1,N), count (1,)"
    roles = ("boxes", "classes", "scores", "count")
    nms = False

    def __init__(self, post, bundle_dir):
        super().__init__(post, bundle_dir)
        self._swap_checked = False
        b, c, s, n = (self.shape(r) for r in self.roles)
        if len(b) != 3 or b[-1] != 4 or len(c) != 2 or len(s) != 2 or len(n) not in (0, 1) or \
                (b[1] != -1 and (c[1] not in (b[1], -1) or s[1] not in (b[1], -1))):
            raise self.misfit(f"the tflite_postprocess head wants boxes (1,N,4), classes (1,N), scores (1,N), "
                              f"count (1,); the model has {post.describe()}")

    @classmethod
    def roles_for(cls, outputs, options) -> tuple[dict[str, int], dict[str, Any], list[str]]:
        found = find_roles(outputs)
        if found is None:
            return super().roles_for(outputs, options)
        return found[0], {}, [f"tflite_postprocess outputs: classes and scores {found[1]}"]

    def decode(self, raw, input_hw):
        post, (th, tw) = self.post, input_hw
        b = post.raw(raw, "boxes").reshape(-1, 4).astype(np.float64)
        c = post.raw(raw, "classes").reshape(-1).astype(np.float64)
        s = post.raw(raw, "scores").reshape(-1).astype(np.float64)
        count = np.asarray(post.raw(raw, "count")).reshape(-1)
        n = int(count[0]) if count.size and np.isfinite(count[0]) else len(s)
        n = max(0, min(n, len(s), len(b)))
        b, c, s = b[:n], c[:n], s[:n]
        if not self._swap_checked and n:
            self._swap_checked = True
            if not np.all(c == np.round(c)) and np.all(s == np.round(s)):
                post.roles["classes"], post.roles["scores"] = post.roles["scores"], post.roles["classes"]
                c, s = s, c
                post.notes.append(f"output {post.output('classes').name!r} holds whole numbers: taken as the "
                                  f"classes, {post.output('scores').name!r} as the scores")
        if self.spec.box_units is BoxUnits.NORMALIZED:
            b = b * np.array([th, tw, th, tw], np.float64)
        return b[:, [1, 0, 3, 2]], s, np.round(c).astype(np.int64)
