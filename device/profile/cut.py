"""Single-operator models cut out of a ``.tflite`` flatbuffer, to time each op with the real interpreter.

Op ``k`` becomes a model of its own: the same operator code, options and tensors (weights keep their
data, activations become the model's inputs, the op's outputs its outputs). It needs the TFLite schema's
object API, which the ``ai-edge-litert`` wheel ships (``ai_edge_litert.schema_py_generated`` and its
``tools.flatbuffer_utils``); runtimes without it get the profile without per-op times.
"""

from __future__ import annotations

import copy
from typing import Any

from ..contract.errors import RuntimeUnavailable

FILE_IDENTIFIER = b"TFL3"


def schema() -> tuple[Any, Any]:
    """(schema module, flatbuffer_utils) from the ai-edge-litert wheel, or RuntimeUnavailable saying what to install."""
    try:
        from ai_edge_litert import schema_py_generated as fb
        from ai_edge_litert.tools import flatbuffer_utils as utils
    except ImportError:
        raise RuntimeUnavailable("per-op times need the TFLite schema from ai-edge-litert, which is not installed",
                                 "pip install ai-edge-litert (numpy 2); the op table and XNNPACK column work without it") from None
    return fb, utils


class Cutter:
    """Reads a model once and cuts single-op models out of its main subgraph."""

    def __init__(self, model_bytes: bytes):
        self.fb, utils = schema()
        self.model = utils.read_model_from_bytearray(bytearray(model_bytes))
        self.graph = self.model.subgraphs[0]

    @property
    def num_ops(self) -> int:
        return len(self.graph.operators or [])

    def cut(self, index: int, shapes: dict[int, tuple[int, ...]]) -> bytes | None:
        """Op ``index`` as a model of its own (bytes), or None when it cannot stand alone (it calls a subgraph).

        ``shapes``: the allocated shape of each tensor, which replaces any unknown dimension.
        """
        fb, src = self.fb, self.graph.operators[index]
        if _calls_subgraph(src):
            return None
        used = list(dict.fromkeys(t for t in [*(src.inputs or []), *(src.outputs or []), *(src.intermediates or [])]
                                  if t >= 0))
        remap = {old: new for new, old in enumerate(used)}
        buffers = [fb.BufferT()]               # buffer 0 is the empty sentinel
        tensors, feeds = [], []
        for old in used:
            t = copy.copy(self.graph.tensors[old])
            data = self._data(t.buffer)
            if data is not None:
                buf = fb.BufferT()
                buf.data = data
                t.buffer = len(buffers)
                buffers.append(buf)
            else:
                t.buffer = 0
                if not t.isVariable and old in (src.inputs or []):
                    feeds.append(remap[old])
            if old in shapes:
                t.shape = list(shapes[old])
            t.shapeSignature = None            # the allocated shape: the cut model is static
            tensors.append(t)
        op = copy.copy(src)
        op.opcodeIndex = 0
        op.inputs = [remap[t] if t >= 0 else -1 for t in (src.inputs or [])]
        op.outputs = [remap[t] for t in (src.outputs or []) if t >= 0]
        op.intermediates = [remap[t] for t in (src.intermediates or []) if t >= 0] or None
        graph = fb.SubGraphT()
        graph.tensors, graph.operators, graph.name = tensors, [op], "op"
        graph.inputs, graph.outputs = feeds, list(op.outputs)
        model = fb.ModelT()
        model.version = self.model.version
        model.operatorCodes = [self.model.operatorCodes[src.opcodeIndex]]
        model.subgraphs, model.buffers = [graph], buffers
        model.description = f"keras-edge profile: op {index}"
        return _pack(model)

    def _data(self, buffer: int):
        if not buffer or buffer >= len(self.model.buffers):
            return None
        data = self.model.buffers[buffer].data
        return data if data is not None and len(data) else None


def _calls_subgraph(op: Any) -> bool:
    for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        if opts is not None and any("ubgraph" in name for name in vars(opts)):
            return True
    return False


def _pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
