"""The variant registry: each quantization mode is a function that configures a TFLite converter.

The CLI's ``--variants`` choices are this registry's keys. A failing variant raises
:class:`VariantFailed` with a reason; the converter records it and keeps the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Callable, Sequence

import numpy as np

from ..tfenv import captured_output, import_tf


class IoType(StrEnum):
    UINT8 = "uint8"
    INT8 = "int8"
    FLOAT32 = "float32"


@dataclass(frozen=True)
class Recipe:
    description: str
    configure: Callable[[Any, Any, "ConvertInputs"], None]   # (converter, tf, inputs) → None
    calibrated: bool = False
    integer_only: bool = False   # every op must compute in integers: float ops left behind fail the variant


@dataclass(frozen=True)
class ConvertInputs:
    calib: Sequence[np.ndarray]   # one float32 array per model input, (N, ...)
    io: IoType = IoType.UINT8
    denylist: tuple[str, ...] = ()  # op names kept in float (selective int8)
    # the model's input names, for several inputs: the converted model orders its inputs by name, not as
    # Keras does, so representative samples are given by name (a dict), never by position
    names: tuple[str, ...] = ()
    # int8 classifiers ending in a softmax: convert the logits and append a float SOFTMAX as the output
    # (host/tflite/softmax_head.py), so probabilities are not cut to the uint8 output's 1/256 steps
    float_softmax: bool = False
    float_output: bool = False    # the converter's output type is float32 whatever ``io`` says (set internally)


class VariantFailed(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def representative_dataset(inputs: ConvertInputs):
    def gen():
        n = len(inputs.calib[0])
        for i in range(n):
            sample = [np.ascontiguousarray(a[i:i + 1], np.float32) for a in inputs.calib]
            yield dict(zip(inputs.names, sample)) if len(inputs.names) == len(sample) > 1 else sample
    return gen


def _fp32(c, tf, inputs):
    pass


def _fp16(c, tf, inputs):
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.target_spec.supported_types = [tf.float16]


def _dynamic(c, tf, inputs):
    c.optimizations = [tf.lite.Optimize.DEFAULT]


def configure_int8(c, tf, inputs):
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = representative_dataset(inputs)
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io = {IoType.UINT8: tf.uint8, IoType.INT8: tf.int8, IoType.FLOAT32: tf.float32}[inputs.io]
    c.inference_input_type = io
    c.inference_output_type = tf.float32 if inputs.float_output else io


def _int8_mixed(c, tf, inputs):
    """int8 wherever the converter has an int8 kernel; the ops it has none for stay in float (named in the report)."""
    configure_int8(c, tf, inputs)
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]


def _int16x8(c, tf, inputs):
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = representative_dataset(inputs)
    c.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]


VARIANTS: dict[str, Recipe] = {
    "fp32": Recipe("float32, no quantization", _fp32),
    "fp16": Recipe("float16 weights, float32 compute on CPU", _fp16),
    "dynamic": Recipe("int8 weights, float activations (dynamic range)", _dynamic),
    "int8": Recipe("full integer int8, calibrated, integer input; a classifier's softmax in float", configure_int8,
                   calibrated=True, integer_only=True),
    "int8-mixed": Recipe("int8 where the converter can, float for the ops it cannot (named)", _int8_mixed,
                         calibrated=True),
    "int16x8": Recipe("int16 activations, int8 weights, calibrated", _int16x8, calibrated=True),
}
DEFAULT_VARIANTS = ("fp32", "fp16", "dynamic", "int8")

# The converter names an op it cannot handle in several ways, depending on the pass that gave up.
_OP_NAMES = (re.compile(r"Quantization not yet supported for op:? *['\"]?([\w.]+)", re.IGNORECASE),
             re.compile(r"not supported by the int8 quantizer[^'\"\n]*['\"]([\w.]+)['\"]", re.IGNORECASE),
             re.compile(r"['\"](tfl?\.\w+)['\"] op is neither a custom op nor a flex op"),
             re.compile(r"failed to legalize operation ['\"](tfl?\.\w+)['\"]"),
             re.compile(r"TF Select ops: (\w+(?:, \w+)*)"))
_FLEX = re.compile(r"(?:Some ops are not supported by the native TFLite runtime|Select TF ops|flex op)", re.IGNORECASE)


def convert(model, name: str, inputs: ConvertInputs, verbose: bool = False) -> tuple[bytes, list[str]]:
    """Convert a Keras model to TFLite bytes for the named variant; returns (bytes, warnings)."""
    tf = import_tf(verbose)
    recipe = VARIANTS[name]
    warnings: list[str] = []
    if recipe.integer_only and inputs.float_softmax and inputs.io is not IoType.FLOAT32 and not inputs.denylist:
        from .softmax_head import append_softmax, logits_model

        head = logits_model(model)
        if head is not None:
            data = _convert_once(tf, head, recipe, replace(inputs, float_output=True), verbose, flex=False)
            _no_float_left(data)
            return append_softmax(data), warnings
    try:
        data = _convert_once(tf, model, recipe, inputs, verbose, flex=False)
    except VariantFailed as e:
        if not _FLEX.search(e.detail) or recipe.calibrated:
            raise
        flex_ops = named_ops(e.detail)
    else:
        # With TFLITE_BUILTINS_INT8 the converter still keeps ops that have no int8 kernel in float
        # (DEQUANTIZE → op → QUANTIZE) without a word: a "full integer" model must not.
        if recipe.integer_only and not inputs.denylist:
            _no_float_left(data)
        return data, warnings
    # Only float variants can fall back to Flex ops, and the board runtime cannot run them.
    data = _convert_once(tf, model, recipe, inputs, verbose, flex=True)
    warnings.append(f"needs SELECT_TF_OPS (Flex){' for ' + ', '.join(flex_ops) if flex_ops else ''}: the board's LiteRT "
                    "runtime has no Flex ops, so this variant will not run there; replace those ops with TFLite builtins")
    return data, warnings


def _no_float_left(data: bytes) -> None:
    """A "full integer" file must not keep ops in float, as the converter does without a word for ops that have
    no int8 kernel (DEQUANTIZE → op → QUANTIZE)."""
    left = float_ops(data)
    if left:
        raise VariantFailed(f"ops that cannot be fully integer-quantized: {', '.join(left)} "
                            "(the converter left them in float)")


def _convert_once(tf, model, recipe: Recipe, inputs: ConvertInputs, verbose: bool, flex: bool) -> bytes:
    with captured_output(not verbose) as cap:
        try:
            c = tf.lite.TFLiteConverter.from_keras_model(model)
            recipe.configure(c, tf, inputs)
            if flex:
                c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
            if inputs.denylist:
                c._experimental_denylisted_ops = []  # noqa: SLF001 - the documented debugger path uses these
                c._experimental_denylisted_nodes = list(inputs.denylist)
            data = c.convert()
            error = None
        except Exception as e:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError…
            data, error = None, e
    if error is not None:
        detail = f"{error}\n{cap.text}"
        ops = named_ops(detail)
        if ops and recipe.calibrated:
            raise VariantFailed(f"ops that cannot be fully integer-quantized: {', '.join(ops)}", detail)
        if _FLEX.search(detail):
            raise VariantFailed("the model needs TensorFlow ops outside the TFLite builtins (SELECT_TF_OPS)"
                                + (f": {', '.join(ops)}" if ops else ""), detail)
        first = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), type(error).__name__)
        raise VariantFailed(f"converter failed: {first[:200]}", detail)
    return data


def named_ops(text: str) -> list[str]:
    """Op names the converter's error text blames (``tf.``/``tfl.`` prefixes dropped)."""
    found = set()
    for pattern in _OP_NAMES:
        for match in pattern.findall(text):
            found.update(n.strip().removeprefix("tfl.").removeprefix("tf.") for n in match.split(","))
    return sorted(found)


def float_ops(tflite: bytes) -> list[str]:
    """Builtin ops of a TFLite model that compute in float (QUANTIZE/DEQUANTIZE at its edges and the float softmax
    head over an integer body aside)."""
    from ai_edge_litert import schema_py_generated as fb

    from .softmax_head import has_float_head

    model = fb.Model.GetRootAs(tflite, 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    floats = {fb.TensorType.FLOAT32, fb.TensorType.FLOAT16, fb.TensorType.FLOAT64}
    found = set()
    head = has_float_head(tflite)   # the float softmax appended as the output (softmax_head.py) is by design
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            if head and s == 0 and o == graph.OperatorsLength() - 1:
                continue
            op = graph.Operators(o)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            outputs = [graph.Tensors(op.Outputs(i)) for i in range(op.OutputsLength()) if op.Outputs(i) >= 0]
            if name not in ("QUANTIZE", "DEQUANTIZE") and any(t.Type() in floats for t in outputs):
                found.add(name)
    return sorted(found)


def op_counts(tflite: bytes) -> dict[str, int]:
    """How many of each builtin op a TFLite model has (a step that adds ops changes the kernels that run)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(tflite, 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    counts: dict[str, int] = {}
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for o in range(graph.OperatorsLength()):
            code = model.OperatorCodes(graph.Operators(o).OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            counts[name] = counts.get(name, 0) + 1
    return counts
