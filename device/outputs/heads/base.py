"""What a detection head is: its output roles, its checks against the model, and its decoding.

A head is built once per :class:`~keras_edge.device.outputs.postprocess.Postprocessor` (it checks the model's
outputs and loads what it needs, such as anchors) and called per inference. It turns the raw outputs into
boxes ``(x1, y1, x2, y2)`` in pixels of the model input, scores in [0, 1] and class ids; the postprocessor
thresholds them, applies NMS when the head asks for it and maps the boxes back onto the original image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np

from ...contract.bundle import TensorSpec
from ...contract.tasks import PostprocessSpec, Task
from ..common import fit_error, shape


class Outputs(Protocol):
    """What a head reads from the postprocessor that builds it (the postprocessor is not imported here)."""

    spec: PostprocessSpec
    roles: dict[str, int]        # role → output index (a head may swap two it tells apart at run time)
    notes: list[str]             # assumptions, said once

    def output(self, role: str) -> TensorSpec: ...
    def raw(self, raw: Sequence[np.ndarray], role: str) -> np.ndarray: ...
    def describe(self) -> str: ...
    def bundle_file(self, bundle_dir: Path | None, rel: str, what: str) -> Path: ...


class Head:
    name: ClassVar[str]
    summary: ClassVar[str]                 # one line, for --help and the docs
    roles: ClassVar[tuple[str, ...]]       # the outputs it reads, in its usual output order
    needs_anchors: ClassVar[bool] = False  # an anchors file travels in the bundle (--anchors)
    objectness: ClassVar[bool] = False     # it can read an objectness column (--objectness)
    nms: ClassVar[bool] = True             # its boxes still need non-maximum suppression

    def __init__(self, post: Outputs, bundle_dir: Path | None):
        self.post = post
        self.spec = post.spec

    # ---- for a bare .tflite described by flags
    @classmethod
    def roles_for(cls, outputs: Sequence[TensorSpec], options: Any) -> tuple[dict[str, int], dict[str, Any], list[str]]:
        """Output roles for a model given only ``--head`` (and the other task options): (roles, spec fields, notes)."""
        return {r: i for i, r in enumerate(cls.roles)}, {}, []

    # ---- per inference
    def decode(self, raw: Sequence[np.ndarray], input_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (N, 4) x1y1x2y2 in model-input pixels, scores (N,) and class ids (N,)."""
        raise NotImplementedError

    def num_classes(self) -> int | None:
        """How many classes the outputs hold, when the head can tell (written into the manifest)."""
        return None

    # ---- helpers
    def shape(self, role: str) -> tuple[int, ...]:
        return shape(self.post.output(role))

    def misfit(self, what: str, fix: str = "check the model's outputs and --task/--head"):
        return fit_error(Task.DETECTION, what, fix)
