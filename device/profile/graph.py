"""A model's operators as the interpreter sees them: types, tensors, workload, and which ones XNNPACK runs.

Everything here comes from the runtime's own interpreter (``_get_ops_details``/``_get_tensor_details``), so it
works with every runtime keras-edge supports, the legacy one included, and needs no schema module.

Which ops XNNPACK took: the interpreter keeps every original node and appends one ``DELEGATE`` node per
partition the delegate claimed. A partition's nodes are those reached walking back from the delegate
node's outputs until its inputs: each of them runs inside XNNPACK, every other original node on a builtin
kernel. Why XNNPACK declined a node is a static reading of its tensors and type (:func:`why_not`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

DELEGATE = "DELEGATE"

# Operators the TFLite XNNPACK delegate has kernels for (tensorflow/lite/delegates/xnnpack/README.md); only
# used to say *why* a node was not taken, the interpreter decides what was.
XNNPACK_OPS = frozenset({
    "ABS", "ADD", "AVERAGE_POOL_2D", "BATCH_MATMUL", "CEIL", "CONCATENATION", "CONV_2D", "COS", "DEPTH_TO_SPACE",
    "DEPTHWISE_CONV_2D", "DEQUANTIZE", "DIV", "ELU", "EXP", "FLOOR", "FULLY_CONNECTED", "GELU", "HARD_SWISH",
    "LEAKY_RELU", "LOG", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM", "MUL", "NEG", "PAD", "PRELU",
    "QUANTIZE", "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "ROUND", "RSQRT", "SIN", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "STRIDED_SLICE", "SUB", "SUM",
    "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "REDUCE_MAX", "SELECT_V2", "STABLEHLO_COMPOSITE",
})
# ops XNNPACK has float kernels for but no quantized ones
XNNPACK_FLOAT_ONLY = frozenset({"SOFTMAX", "DIV", "EXP", "LOG", "GELU", "SQRT", "RSQRT", "SIN", "COS", "SQUARE",
                                "CEIL", "FLOOR", "ROUND", "HARD_SWISH"})
# ops whose cost is dominated by multiply-accumulates (the rest: by the bytes they move)
DENSE_OPS = frozenset({"CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "CONV_3D"})
DEPTHWISE_OPS = frozenset({"DEPTHWISE_CONV_2D"})


class OpClass(StrEnum):
    DENSE = "dense"          # convolution, fully connected, matmul: MAC-bound
    DEPTHWISE = "depthwise"  # depthwise convolution: few MACs per byte
    OTHER = "other"          # element-wise, pooling, reshapes: bytes-bound


class Family(StrEnum):
    """Which kernels run an op: XNNPACK by data type, or TFLite's builtin kernels."""

    XNNPACK_F32 = "xnnpack-f32"
    XNNPACK_QS8 = "xnnpack-qs8"      # int8/uint8 activations and weights
    XNNPACK_QD8 = "xnnpack-qd8"      # float activations quantized on the fly, int8 weights (dynamic range)
    BUILTIN_F32 = "builtin-f32"
    BUILTIN_INT8 = "builtin-int8"
    BUILTIN_INT16 = "builtin-int16"  # int16 activations (int16x8): reference kernels on most CPUs
    BUILTIN_HYBRID = "builtin-hybrid"
    BUILTIN_OTHER = "builtin-other"  # int32/bool/string tensors, custom ops

    @property
    def xnnpack(self) -> bool:
        return self.value.startswith("xnnpack")


@dataclass(frozen=True)
class TensorInfo:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    const: bool             # a weight: produced by no op and not a model input
    dynamic: bool = False   # its shape signature has an unknown dimension past the batch

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        try:
            return self.numel * np.dtype(self.dtype).itemsize
        except TypeError:
            return self.numel

    def label(self) -> str:
        return f"{'x'.join(map(str, self.shape)) or 'scalar'} {self.dtype}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "const": self.const, "dynamic": self.dynamic}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorInfo":
        return cls(int(d["index"]), str(d.get("name", "")), tuple(int(s) for s in d["shape"]), str(d["dtype"]),
                   bool(d.get("const")), bool(d.get("dynamic")))


@dataclass(frozen=True)
class OpInfo:
    """One operator of the model's main subgraph, in execution order."""

    index: int
    op: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    xnnpack: bool
    why_not: str = ""        # when XNNPACK does not run it: why, in a few words

    @property
    def activations(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.inputs if not t.const)

    @property
    def weights(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.inputs if t.const)

    @property
    def op_class(self) -> OpClass:
        return OpClass.DENSE if self.op in DENSE_OPS else OpClass.DEPTHWISE if self.op in DEPTHWISE_OPS else OpClass.OTHER

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one inference (0 for ops that only move or combine values)."""
        return op_macs(self)

    @property
    def bytes(self) -> int:
        """Bytes the op reads and writes: its activations, weights and outputs."""
        return sum(t.nbytes for t in self.inputs) + sum(t.nbytes for t in self.outputs)

    @property
    def family(self) -> Family:
        return family_of(self)

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "op": self.op, "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs], "xnnpack": self.xnnpack, "why_not": self.why_not,
                "macs": self.macs, "bytes": self.bytes, "family": str(self.family), "op_class": str(self.op_class)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OpInfo":
        return cls(int(d["index"]), str(d["op"]), tuple(TensorInfo.from_dict(t) for t in d["inputs"]),
                   tuple(TensorInfo.from_dict(t) for t in d["outputs"]), bool(d["xnnpack"]), str(d.get("why_not") or ""))


def op_macs(op: OpInfo) -> int:
    out = op.outputs[0] if op.outputs else None
    w = op.weights
    if out is None:
        return 0
    if op.op == "CONV_2D" and len(op.inputs) > 1 and len(op.inputs[1].shape) == 4:
        _, kh, kw, cin = op.inputs[1].shape          # OHWI; cin is per group
        return out.numel * kh * kw * cin
    if op.op == "DEPTHWISE_CONV_2D" and len(op.inputs) > 1 and len(op.inputs[1].shape) == 4:
        _, kh, kw, _ = op.inputs[1].shape
        return out.numel * kh * kw
    if op.op == "FULLY_CONNECTED" and len(op.inputs) > 1 and op.inputs[1].shape:
        return out.numel * op.inputs[1].shape[-1]
    if op.op == "TRANSPOSE_CONV" and len(op.inputs) > 2 and len(op.inputs[1].shape) == 4:
        cout, kh, kw, _ = op.inputs[1].shape
        return op.inputs[2].numel * cout * kh * kw
    if op.op == "BATCH_MATMUL" and op.inputs and op.inputs[0].shape:
        return out.numel * op.inputs[0].shape[-1]
    if op.op == "CONV_3D" and w and len(w[0].shape) == 5:
        kd, kh, kw, cin, _ = w[0].shape
        return out.numel * kd * kh * kw * cin
    return 0


def _kind(dtype: str) -> str:
    d = np.dtype(dtype) if dtype not in ("bool", "string") else None
    if d is None:
        return "other"
    if d.kind == "f":
        return "float"
    if d in (np.int8, np.uint8):
        return "int8"
    if d == np.int16:
        return "int16"
    return "other"


def family_of(op: OpInfo) -> Family:
    acts = [_kind(t.dtype) for t in (*op.activations, *op.outputs)]
    weights = [_kind(t.dtype) for t in op.weights]
    hybrid = "float" in acts and "int8" in weights and op.op_class is not OpClass.OTHER
    if op.xnnpack:
        if hybrid:
            return Family.XNNPACK_QD8
        return Family.XNNPACK_QS8 if "int8" in acts and "float" not in acts else Family.XNNPACK_F32
    if "int16" in acts:
        return Family.BUILTIN_INT16
    if hybrid:
        return Family.BUILTIN_HYBRID
    if acts and all(a == "float" for a in acts):
        return Family.BUILTIN_F32
    if acts and all(a in ("int8", "float") for a in acts):
        return Family.BUILTIN_INT8
    return Family.BUILTIN_OTHER


def why_not(op: OpInfo) -> str:
    """Why XNNPACK did not take ``op``: the first reason its tensors or type give."""
    kinds = {_kind(t.dtype) for t in (*op.activations, *op.outputs)}
    if "int16" in kinds:
        return "int16 activations (XNNPACK has no int16x8 kernels)"
    if op.op not in XNNPACK_OPS:
        return f"{op.op} has no XNNPACK kernel"
    if any(t.dynamic for t in (*op.inputs, *op.outputs)):
        return "dynamic shape"
    if op.op == "RESHAPE" and len(op.inputs) > 1 and not op.inputs[1].const:
        return "its new shape is computed at run time, not a constant"
    if "other" in kinds:
        return "int32/bool/string tensors"
    ins = {_kind(t.dtype) for t in op.activations}
    if op.op == "QUANTIZE" and ins <= {"int8"}:
        return "requantization between integer types (e.g. uint8 to int8) has no XNNPACK kernel"
    if op.op in XNNPACK_FLOAT_ONLY and "int8" in kinds:
        return f"XNNPACK runs {op.op} on float tensors only"
    if "float" in kinds and any(_kind(t.dtype) == "int8" for t in op.weights):
        return "dynamic-range (hybrid) weights this XNNPACK build does not take"
    if any(_kind(t.dtype) == "float" and np.dtype(t.dtype) == np.float16 for t in op.inputs):
        return "float16 tensors outside a weight"
    return "parameters XNNPACK does not take (activation, stride, rank or a non-constant weight)"


def read_ops(it: Any) -> list[OpInfo]:
    """The main subgraph's operators of an allocated interpreter, with XNNPACK's claim on each."""
    details = it._get_ops_details()   # private but present in every runtime keras-edge supports
    originals = [d for d in details if d["op_name"] != DELEGATE]
    delegates = [d for d in details if d["op_name"] == DELEGATE]
    inputs = {int(i) for i in it._interpreter.InputIndices()} if hasattr(it, "_interpreter") else {
        int(d["index"]) for d in it.get_input_details()}
    produced = {int(t): int(d["index"]) for d in originals for t in d["outputs"] if int(t) >= 0}
    claimed = claimed_nodes(originals, delegates, produced)
    cache: dict[int, TensorInfo] = {}

    def tensor(i: int) -> TensorInfo:
        if i not in cache:
            t = it._get_tensor_details(i, 0) if _takes_subgraph(it) else it._get_tensor_details(i)
            sig = [int(s) for s in t.get("shape_signature", t["shape"])]
            cache[i] = TensorInfo(i, str(t["name"]), tuple(int(s) for s in t["shape"]), np.dtype(t["dtype"]).name,
                                  const=i not in produced and i not in inputs,
                                  dynamic=any(s < 0 for s in sig[1:]))
        return cache[i]

    ops = []
    for d in originals:
        idx = int(d["index"])
        op = OpInfo(idx, str(d["op_name"]), tuple(tensor(int(t)) for t in d["inputs"] if int(t) >= 0),
                    tuple(tensor(int(t)) for t in d["outputs"] if int(t) >= 0), xnnpack=idx in claimed)
        ops.append(op if op.xnnpack else OpInfo(op.index, op.op, op.inputs, op.outputs, False, why_not(op)))
    return ops


def claimed_nodes(originals: list[dict], delegates: list[dict], produced: dict[int, int]) -> set[int]:
    """Original node indices inside some delegate partition (walk back from its outputs to its inputs)."""
    by_index = {int(d["index"]): d for d in originals}
    claimed: set[int] = set()
    for dnode in delegates:
        stop = {int(t) for t in dnode["inputs"]}
        todo = [int(t) for t in dnode["outputs"]]
        seen: set[int] = set()
        while todo:
            t = todo.pop()
            if t in stop or t in seen or t not in produced:
                continue
            seen.add(t)
            node = produced[t]
            if node not in claimed:
                claimed.add(node)
                todo.extend(int(x) for x in by_index[node]["inputs"] if int(x) >= 0)
    return claimed


def _takes_subgraph(it: Any) -> bool:
    import inspect

    try:
        return "subgraph_index" in inspect.signature(it._get_tensor_details).parameters
    except (TypeError, ValueError):
        return False
