"""Loading Keras models safely and reading what the converter needs from them."""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_edge.device.contract import TensorSpec
from keras_edge.device.contract import ConfigError, ModelError

from .tfenv import captured_output, import_tf

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class LoadedModel:
    model: Any               # keras.Model
    path: Path | None        # None for a model object given through the Python API
    kind: str                # "keras" | "h5" | "savedmodel" | "object"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    # per input name: the rescaling a SavedModel's serving graph applies to it first, as read from the graph
    # ("x*0.00392+0"); a SavedModel hides its Rescaling layer from Keras, so this is how it is found
    graph_rescaling: dict[str, str] | None = None

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else str(getattr(self.model, "name", "model"))


_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([\w.]+)'")


def import_user_modules(modules: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Import the user's modules (dotted names or .py files) and return the Keras classes each defines.

    A library's classes are rarely registered with Keras (and the user cannot add the decorator to a
    library), so every ``keras.layers.Layer`` subclass (models included) *defined* in a named module is
    offered to the loader by its class name; classes a module only imports from elsewhere are not.
    """
    found: dict[str, Any] = {}
    for name in modules:
        try:
            if name.endswith(".py"):
                path = Path(name)
                if not path.is_file():
                    raise ModelError(f"{name}: no such Python file", "give a .py file or a dotted module name")
                spec = importlib.util.spec_from_file_location(path.stem, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[path.stem] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(name)
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001 - user code may raise anything while importing
            raise ModelError(f"importing {name} failed ({type(e).__name__}: {_first_line(e)})",
                             "check that the module imports on its own (python -c 'import ...')") from None
        found.update(keras_classes(module))
    return found


def keras_classes(module: Any) -> dict[str, Any]:
    """The Keras layer and model classes a module defines itself, by class name."""
    import keras

    out = {}
    for attr, value in vars(module).items():
        if (isinstance(value, type) and issubclass(value, keras.layers.Layer)
                and getattr(value, "__module__", None) == module.__name__ and not attr.startswith("_")):
            out[value.__name__] = value
    return out


def from_object(model: Any) -> LoadedModel:
    """A model object given through the Python API (any built Keras model, subclassed ones included)."""
    import keras

    if not isinstance(model, keras.Model):
        raise ModelError(f"{type(model).__name__} is not a keras.Model", "give a Keras model object or a model file path")
    model = functional(model)
    return LoadedModel(model, None, "object", _specs(model.inputs), _specs(model.outputs, _output_names(model)))


def _unsafe_hint(err: Exception) -> bool:
    text = str(err)
    return "safe_mode" in text or "Lambda" in text or "arbitrary code" in text


def require_tensorflow() -> None:
    """Say that TensorFlow is missing without importing it (on a board, before any other complaint)."""
    if any(importlib.util.find_spec(m) is None for m in ("tensorflow", "keras")):
        import_tf()   # raises the one message that says what to install


def check_model_path(path: str | os.PathLike) -> Path:
    """What can be told about a model path without TensorFlow: it exists, and is a .keras/.h5 file or a
    SavedModel directory. Called before TensorFlow is imported, so a typo costs milliseconds, not seconds."""
    require_tensorflow()
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such model file", "pass a .keras or .h5 file, or a SavedModel directory")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path} is a directory without saved_model.pb", "pass a SavedModel directory, .keras or .h5")
        return path
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ModelError(f"{path} is not a Keras model file (expected {', '.join(KERAS_SUFFIXES)} or a SavedModel dir)",
                         "save the model with model.save('model.keras')")
    if path.stat().st_size == 0:
        raise ModelError(f"{path} is empty (0 bytes)", "save the model again")
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
        raise ModelError(f"{path} is not a valid .keras file (not a complete zip archive)",
                         "check that the file is a complete Keras model (it may be truncated or corrupt)")
    return path


def load_model(path: Any, safe_mode: bool = True, verbose: bool = False, imports: tuple[str, ...] = ()) -> LoadedModel:
    """Load ``.keras``, ``.h5`` or a SavedModel directory (or take a model object); safe mode unless the
    user opts out. ``imports`` are the user's modules that register custom or subclassed classes."""
    if isinstance(path, (str, os.PathLike)):   # bad paths fail before TensorFlow's seconds of start-up
        path = check_model_path(path)
    tf = import_tf(verbose)
    if not isinstance(path, Path):
        return from_object(path)
    custom = import_user_modules(imports)
    import keras

    if path.is_dir():
        kind = "savedmodel"
        if safe_mode:   # a SavedModel is code: its graph is checked for I/O and Python ops before any of it runs
            from .savedmodel_safety import check_savedmodel

            check_savedmodel(path)
        try:
            with captured_output(not verbose):
                loaded_sm = tf.saved_model.load(str(path))
        except Exception as e:  # noqa: BLE001 - any failure here means "cannot load this SavedModel"
            raise ModelError(f"{path} could not be loaded as a SavedModel ({_first_line(e)})",
                             "re-export it with model.export() or save as .keras") from None
        signatures = list(getattr(loaded_sm, "signatures", {}) or {})
        if SERVING not in signatures:
            raise ModelError(f"{path} has no {SERVING!r} signature (it has "
                             f"{', '.join(repr(s) for s in signatures) or 'none'}), so its inputs are unknown",
                             "export it with model.export(path), or tf.saved_model.save(obj, path, signatures=fn)")
        try:
            with captured_output(not verbose):
                model, rescaling = _wrap_tfsm(keras, tf, path, loaded_sm.signatures[SERVING])
        except Exception as e:  # noqa: BLE001 - any failure here means "cannot load this SavedModel"
            raise ModelError(f"{path} could not be loaded as a SavedModel ({_first_line(e)})",
                             "re-export it with model.export() or save as .keras") from None
        return LoadedModel(model, path, kind, _specs(model.inputs), _specs(model.outputs, _output_names(model)), rescaling)
    else:
        kind = "h5" if path.suffix.lower() in (".h5", ".hdf5") else "keras"
        try:
            with captured_output(not verbose):
                model = keras.models.load_model(path, compile=False, safe_mode=safe_mode, custom_objects=custom or None)
        except Exception as e:  # noqa: BLE001 - loaders raise anything from ValueError to OSError
            unknown = _UNKNOWN_CLASS.search(str(e))
            if unknown and imports:
                raise ConfigError("imports", f"({', '.join(imports)}) does not define the class {unknown.group(1)} that "
                                  f"{path} uses", "name the module or .py file where that class is defined (a "
                                  "module that only imports it from elsewhere does not count)") from None
            if unknown:
                raise ConfigError("imports", f"MODULE is needed: {path} uses the custom class {unknown.group(1)}, which is "
                                  "not registered in this process", "give the module or .py file that defines it "
                                  "(e.g. --import mtcnn.network.rnet), or give the model object to the Python API"
                                  ) from None
            if safe_mode and _unsafe_hint(e):
                raise ModelError(f"{path} contains a Lambda layer (or other code) that safe mode refuses to load",
                                 "if you trust this file, pass --unsafe") from None
            raise ModelError(f"{path} could not be loaded ({_first_line(e)})",
                             "check that the file is a complete Keras model (it may be truncated or corrupt)") from None
    model = functional(model)
    return LoadedModel(model, path, kind, _specs(model.inputs), _specs(model.outputs, _output_names(model)))


def functional(model: Any, input_shape: tuple[int | None, ...] | None = None) -> Any:
    """A subclassed model as a functional one (symbolic inputs and outputs), from its build shape.

    Subclassed ``keras.Model``s have no ``inputs`` until traced; the converter and the spec need them.
    """
    import keras

    try:
        if model.inputs:
            return model
    except (AttributeError, ValueError):
        pass
    shape = input_shape
    if shape is None:
        build = (model.get_build_config() or {}) if hasattr(model, "get_build_config") else {}
        shape = build.get("input_shape") or _single_shape(build.get("shapes_dict")) or _build_default(model)
    if not shape or isinstance(shape, dict) or isinstance(shape[0], (list, tuple)):
        raise ModelError(f"model {model.name!r} is subclassed and its input shape is unknown",
                         "build it before saving (model(x) or model.build(shape)), or give the Python API a built model")
    inp = keras.Input(shape=tuple(shape[1:]), name="input")
    return keras.Model(inp, model(inp), name=model.name)


def _single_shape(shapes: Any) -> Any:
    """The one input shape of a build config's ``shapes_dict`` ({"input_shape": [...]}), else None."""
    return next(iter(shapes.values())) if isinstance(shapes, dict) and len(shapes) == 1 else None


def _build_default(model: Any) -> Any:
    """The input shape a subclassed model's own ``build`` defaults to (``def build(self, input_shape=(None, 24,
    24, 3))``): a model built with ``model.build()`` records no shape, yet its class says which one it took."""
    import inspect

    try:
        param = inspect.signature(type(model).build).parameters.get("input_shape")
    except (TypeError, ValueError):
        return None
    default = getattr(param, "default", None)
    ok = isinstance(default, (tuple, list)) and len(default) >= 2 and all(d is None or isinstance(d, int) for d in default)
    return tuple(default) if ok and getattr(model, "built", False) else None


SERVING = "serving_default"


@functools.lru_cache(maxsize=1)
def signature_layer_class():
    """The layer that wraps a SavedModel's serving signature, registered with Keras so that a model holding
    it can be cloned from its config (int8-ptq and QAT clone the model they adjust)."""
    import keras

    @keras.saving.register_keras_serializable(package="keras_edge", name="SavedModelSignature")
    class SavedModelSignature(keras.layers.TFSMLayer):
        """TFSMLayer calls its endpoint with one positional argument; a signature with several inputs
        takes them as keyword arguments."""

        def call(self, inputs, training=False, **kwargs):
            if isinstance(inputs, dict):
                return self.call_endpoint_fn(**inputs)
            return self.call_endpoint_fn(inputs)

        @classmethod
        def from_config(cls, config, custom_objects=None, safe_mode=None):
            # a clone of a wrapper this process made from a SavedModel the user gave reloads that same directory:
            # no new trust; any other path (a config from a file) goes through Keras's safe-mode refusal
            if str(config.get("filepath")) in _WRAPPED:
                return cls(**config)
            return super().from_config(config, custom_objects=custom_objects, safe_mode=safe_mode)

    return SavedModelSignature


_WRAPPED: set[str] = set()   # SavedModel directories wrapped by load_model in this process


def _wrap_tfsm(keras, tf, path: Path, sig) -> tuple[Any, dict[str, str]]:
    """A SavedModel's serving signature as a functional Keras model: one named input per signature input,
    one output per signature output (named after it, in sorted key order), and the rescaling each input
    goes through first, read from the graph."""

    specs = sig.structured_input_signature[1]
    if not specs:
        raise ValueError(f"the {SERVING!r} signature takes no named inputs")
    layer = signature_layer_class()(str(path), call_endpoint=SERVING)
    _WRAPPED.add(str(path))
    inputs = {name: keras.Input(shape=tuple(spec.shape[1:]), name=name, dtype=spec.dtype.name)
              for name, spec in sorted(specs.items())}
    out = layer(inputs if len(inputs) > 1 else next(iter(inputs.values())))
    if isinstance(out, dict):
        out = [keras.layers.Identity(name=k)(out[k]) for k in sorted(out)]
        out = out[0] if len(out) == 1 else out
    try:
        rescaling = graph_rescaling(tf, sig, list(inputs))
    except Exception:  # noqa: BLE001 - reading the graph is best effort; the user can state the preprocessing
        rescaling = {}
    return keras.Model(list(inputs.values()) if len(inputs) > 1 else next(iter(inputs.values())), out), rescaling


def graph_rescaling(tf, sig, names: list[str]) -> dict[str, str]:
    """For each named input of a concrete function: the rescaling it starts with (``x*scale+offset``, from
    Mul/RealDiv/Add/Sub ops with constant operands, past Identity/Cast), as text; inputs without one are left out.

    The function is frozen first (variables to constants, calls inlined) so the ops of the model's own
    function are visible from the signature's placeholders.
    """
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    graph = convert_variables_to_constants_v2(sig).graph.as_graph_def()
    nodes = {n.name: n for n in graph.node}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for ref in n.input:
            consumers.setdefault(ref.lstrip("^").split(":")[0], []).append(n)

    def const(name: str) -> float | None:
        node = nodes.get(name.split(":")[0])
        while node is not None and node.op in ("Identity", "Cast") and node.input:
            node = nodes.get(node.input[0].split(":")[0])
        if node is None or node.op != "Const":
            return None
        value = tensor_util.MakeNdarray(node.attr["value"].tensor)
        return float(value.reshape(-1)[0]) if value.size and np.all(value == value.reshape(-1)[0]) else None

    found = {}
    for name in names:
        placeholders = [n for n in graph.node if n.op == "Placeholder" and n.name in (name, f"{name}_1")]
        if not placeholders:
            continue
        current, scale, offset, seen = placeholders[0].name, 1.0, 0.0, False
        while True:
            nxt = consumers.get(current, [])
            if len(nxt) != 1:
                break
            op = nxt[0]
            if op.op in ("Identity", "Cast"):
                current = op.name
                continue
            other = [ref for ref in op.input if ref.split(":")[0] != current]
            value = const(other[0]) if len(other) == 1 else None
            if value is None or op.op not in ("Mul", "RealDiv", "AddV2", "Add", "Sub", "BiasAdd"):
                break
            if op.op == "Mul":
                scale, offset = scale * value, offset * value
            elif op.op == "RealDiv" and op.input[0].split(":")[0] == current and value != 0:
                scale, offset = scale / value, offset / value
            elif op.op in ("AddV2", "Add", "BiasAdd"):
                offset += value
            elif op.op == "Sub" and op.input[0].split(":")[0] == current:
                offset -= value
            else:
                break
            seen, current = True, op.name
        if seen:
            found[name] = f"x*{scale:.3g}{offset:+.3g}"
    return found


def _first_line(e: Exception, limit: int = 300) -> str:
    """The first line of an exception, cut at a sentence or word boundary, never mid-word."""
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else type(e).__name__
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("; "))
    return cut[:end + 1] if end > limit // 2 else cut[:cut.rfind(" ")] + " …"


def _output_names(model) -> list[str] | None:
    """The outputs' Keras names (their layers'), which say what each output is; tensor names do not."""
    names = list(getattr(model, "output_names", None) or [])
    return names if len(names) == len(model.outputs) and len(set(names)) == len(names) else None


def _specs(tensors, names: list[str] | None = None) -> tuple[TensorSpec, ...]:
    out = []
    for i, t in enumerate(tensors):
        shape = tuple(-1 if d is None else int(d) for d in t.shape)
        name = (names[i] if names else None) or getattr(t, "name", None) or f"tensor_{i}"
        out.append(TensorSpec(name=str(name), shape=shape, dtype=str(getattr(t.dtype, "name", t.dtype))))
    return tuple(out)


def leading_preprocessing(model) -> list[Any]:
    """Rescaling/Normalization layers at the start of a model (they mean the input is raw pixels)."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization)):
            found.append(layer)
            continue
        if isinstance(layer, (keras.layers.Resizing, keras.layers.CenterCrop)):
            continue
        break
    return found


def save_model(model: Any, out: str | os.PathLike) -> Path:
    """Save a Keras model as ``.keras`` atomically: next to the target, then rename (an interrupted run
    leaves the previous file intact). The file follows the umask, like any file the user creates."""
    import tempfile

    from keras_edge.device.contract.bundle import current_umask
    from keras_edge.device.contract import ConfigError

    out = Path(out)
    if out.suffix != ".keras":
        raise ConfigError("out", f"{out} does not end in .keras", "Keras 3 saves models as NAME.keras")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".keras", dir=out.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
