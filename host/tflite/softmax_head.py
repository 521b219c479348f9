"""A float softmax after an integer body: int8 classifiers whose probabilities are not cut to 1/256 steps.

A full-integer classifier ends in an int8 SOFTMAX whose uint8 output has TFLite's fixed scale 1/256: every
probability is a multiple of 0.0039. That grid alone costs the fer emotion CNN a KL of 0.0034 against Keras
(a third of everything TensorFlow's int8 loses there), and it turns near-ties into exact ties. The remedy is
the one the field uses for accelerators' outputs: compute the last layer's activation in float. The model
is converted without its softmax (int8 logits, dequantized to a float32 output by the converter), and one
float SOFTMAX over those N logits is appended to the flatbuffer as the graph's output. Every other op stays
integer (XNNPACK runs the float softmax too); the file's input is unchanged, its output is float32
probabilities, so runners, verify and reports need nothing new.
"""

from __future__ import annotations

from typing import Any


def logits_model(model: Any) -> Any | None:
    """The Keras model without its final softmax (same inputs, the logits as output), or None when it does not end
    in a softmax over the last axis of a single (batch, classes) output, or cannot be cut (subclassed models)."""
    import keras

    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):
        return None
    if len(outputs) != 1 or len(outputs[0].shape) != 2:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None)
    if layer is None:
        return None
    try:   # the node that made this model's output: a layer shared with another graph has several
        node = layer._inbound_nodes[history.node_index]   # noqa: SLF001 - Keras keeps no public node list
        ins = list(node.input_tensors)
    except (AttributeError, IndexError, TypeError):
        return None
    if len(ins) != 1:
        return None
    x = ins[0]
    try:
        if isinstance(layer, keras.layers.Softmax):
            return keras.Model(model.inputs, x, name=f"{model.name}_logits") if layer.axis in (-1, 1) else None
        activation = getattr(layer, "activation", None)
        if getattr(activation, "__name__", "") != "softmax":
            return None
        if isinstance(layer, keras.layers.Activation):
            return keras.Model(model.inputs, x, name=f"{model.name}_logits")
        if isinstance(layer, keras.layers.Dense):
            config = {**layer.get_config(), "activation": "linear", "name": f"{layer.name}_logits"}
            linear = type(layer).from_config(config)
            y = linear(x)
            linear.set_weights(layer.get_weights())
            return keras.Model(model.inputs, y, name=f"{model.name}_logits")
    except ValueError:   # a graph Keras cannot cut here: the variant keeps its int8 softmax
        return None
    return None


def append_softmax(tflite: bytes) -> bytes:
    """``tflite`` (one float32 output: dequantized logits) with a float SOFTMAX appended as its output."""
    from keras_edge.device.profile.cut import pack, schema

    fb, utils = schema()
    model = utils.read_model_from_bytearray(bytearray(tflite))
    graph = model.subgraphs[0]
    if len(graph.outputs) != 1:
        raise ValueError("the logits model has more than one output")
    logits = graph.outputs[0]
    src = graph.tensors[logits]
    if src.type != fb.TensorType.FLOAT32:
        raise ValueError("the logits model's output is not float32")
    probs = fb.TensorT()
    probs.shape = list(src.shape)
    probs.shapeSignature = list(src.shapeSignature) if src.shapeSignature is not None else None
    probs.type, probs.buffer, probs.name = fb.TensorType.FLOAT32, 0, "probabilities"
    graph.tensors.append(probs)
    out = len(graph.tensors) - 1
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.SOFTMAX
    code.version = 1
    model.operatorCodes.append(code)
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes) - 1, [logits], [out]
    op.builtinOptionsType = fb.BuiltinOptions.SoftmaxOptions
    op.builtinOptions = fb.SoftmaxOptionsT()
    op.builtinOptions.beta = 1.0
    graph.operators.append(op)
    graph.outputs = [out]
    for sig in model.signatureDefs or []:
        for t in sig.outputs or []:
            if t.tensorIndex == logits:
                t.tensorIndex = out
    return pack(model)


def has_float_head(tflite: bytes) -> bool:
    """Whether the file ends in the float softmax this module appends (the rest is what float_ops judges)."""
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(tflite, 0)
    graph = model.Subgraphs(0)
    n = graph.OperatorsLength()
    if n == 0 or graph.OutputsLength() != 1:
        return False
    op = graph.Operators(n - 1)
    code = model.OperatorCodes(op.OpcodeIndex())
    return (max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) == fb.BuiltinOperator.SOFTMAX
            and op.OutputsLength() == 1 and op.Outputs(0) == graph.Outputs(0)
            and graph.Tensors(op.Outputs(0)).Type() == fb.TensorType.FLOAT32)
