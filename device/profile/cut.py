"""Single-operator graphs cut out of a ``.tflite`` flatbuffer, to time each op with the real interpreter.

Op ``k`` becomes a subgraph of its own: the same operator code, options and tensors (weights point at the
same buffers, activations become the subgraph's inputs, the op's outputs its outputs). :meth:`Cutter.combined`
appends one such subgraph per op, and two probe subgraphs (a one-element float ADD that XNNPACK takes and an
int32 ADD that it does not: the fixed cost of one invoke), to the model itself: one interpreter then holds
the whole model as subgraph 0 and every op beside it, and they all share its XNNPACK delegate and thread
pool, which stays awake from one op to the next as it does inside the model.

It needs the TFLite schema's object API, which the ``ai-edge-litert`` wheel ships
(``ai_edge_litert.schema_py_generated`` and its ``tools.flatbuffer_utils``); runtimes without it get the
profile without per-op times.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ..contract.errors import RuntimeUnavailable

FILE_IDENTIFIER = b"TFL3"
WAKE_SHAPE = (64, 1024)   # 64K floats: enough work that XNNPACK splits it over every thread


def schema() -> tuple[Any, Any]:
    """(schema module, flatbuffer_utils) from the ai-edge-litert wheel, or RuntimeUnavailable saying what to install."""
    try:
        from ai_edge_litert import schema_py_generated as fb
        from ai_edge_litert.tools import flatbuffer_utils as utils
    except ImportError:
        raise RuntimeUnavailable("per-op times need the TFLite schema from ai-edge-litert, which is not installed",
                                 "pip install ai-edge-litert (numpy 2); the op table and XNNPACK column work without it") from None
    return fb, utils


@dataclass(frozen=True)
class OpGraph:
    """Where op ``op`` lives in the combined model: its subgraph, and (subgraph tensor, model tensor) per input fed."""

    op: int
    subgraph: int
    feeds: tuple[tuple[int, int], ...]
    outputs: tuple[int, ...] = ()      # its output tensors in the subgraph


@dataclass(frozen=True)
class Combined:
    model: bytes
    ops: dict[int, OpGraph]            # op index → its subgraph (ops that call a subgraph are left out)
    probe_xnnpack: int                 # subgraph of the float ADD probe
    probe_builtin: int                 # subgraph of the int32 ADD probe
    wake: int                          # a float ADD big enough to run on every thread: wakes the pool, untimed


class Cutter:
    """Reads a model once and cuts single-op models out of its main subgraph."""

    def __init__(self, model_bytes: bytes):
        self.fb, utils = schema()
        self.model = utils.read_model_from_bytearray(bytearray(model_bytes))
        self.graph = self.model.subgraphs[0]

    @property
    def num_ops(self) -> int:
        return len(self.graph.operators or [])

    def combined(self, indices: list[int], shapes: dict[int, tuple[int, ...]]) -> Combined:
        """The model with a subgraph per op of ``indices`` and the two probes appended (see the module docstring)."""
        fb = self.fb
        model = copy.copy(self.model)
        model.subgraphs = list(self.model.subgraphs)
        model.operatorCodes = list(self.model.operatorCodes)
        graphs: dict[int, OpGraph] = {}
        for index in indices:
            src = self.graph.operators[index]
            if _calls_subgraph(src):
                continue
            used = list(dict.fromkeys(t for t in [*(src.inputs or []), *(src.outputs or []), *(src.intermediates or [])]
                                      if t >= 0))
            remap = {old: new for new, old in enumerate(used)}
            tensors, feeds = [], []
            for old in used:
                t = copy.copy(self.graph.tensors[old])
                if self._data(t.buffer) is None and not t.isVariable and old in (src.inputs or []):
                    feeds.append((remap[old], old))
                if old in shapes:
                    t.shape = list(shapes[old])
                t.shapeSignature = None
                tensors.append(t)
            op = copy.copy(src)
            op.inputs = [remap[t] if t >= 0 else -1 for t in (src.inputs or [])]
            op.outputs = [remap[t] for t in (src.outputs or []) if t >= 0]
            op.intermediates = [remap[t] for t in (src.intermediates or []) if t >= 0] or None
            graph = fb.SubGraphT()
            graph.tensors, graph.operators, graph.name = tensors, [op], f"keras-edge-profile-op-{index}"
            graph.inputs, graph.outputs = [f for f, _ in feeds], list(op.outputs)
            graphs[index] = OpGraph(index, len(model.subgraphs), tuple(feeds), tuple(op.outputs))
            model.subgraphs.append(graph)
        code = fb.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.ADD
        code.version = 1
        model.operatorCodes.append(code)
        code_index = len(model.operatorCodes) - 1
        probes = [self._probe(model, code_index, t) for t in (fb.TensorType.FLOAT32, fb.TensorType.INT32)]
        wake = self._probe(model, code_index, fb.TensorType.FLOAT32, WAKE_SHAPE)
        return Combined(pack(model), graphs, *probes, wake)

    def _probe(self, model: Any, opcode: int, dtype: int, shape: tuple[int, ...] = (1,)) -> int:
        fb = self.fb
        tensors = []
        for i in range(3):
            t = fb.TensorT()
            t.shape, t.type, t.buffer, t.name = list(shape), dtype, 0, f"probe{i}"
            tensors.append(t)
        op = fb.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = opcode, [0, 1], [2]
        op.builtinOptionsType, op.builtinOptions = fb.BuiltinOptions.AddOptions, fb.AddOptionsT()
        graph = fb.SubGraphT()
        graph.tensors, graph.operators, graph.inputs, graph.outputs = tensors, [op], [0, 1], [2]
        graph.name = "keras-edge-profile-probe"
        model.subgraphs.append(graph)
        return len(model.subgraphs) - 1

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


def pack(model: Any) -> bytes:
    """A flatbuffer object model (``ModelT``) serialised as a ``.tflite`` file."""
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())
