"""Loading Keras models safely and reading what the converter needs from them."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_edge.device.bundle import TensorSpec
from keras_edge.device.errors import ConfigError, ModelError

from .tfenv import captured_output, import_tf

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class LoadedModel:
    model: Any               # keras.Model
    path: Path | None        # None for a model object given through the Python API
    kind: str                # "keras" | "h5" | "savedmodel" | "object"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def name(self) -> str:
        return self.path.stem if self.path is not None else str(getattr(self.model, "name", "model"))


_UNKNOWN_CLASS = re.compile(r"Could not locate (?:class|function) '([\w.]+)'")


def import_user_modules(modules: tuple[str, ...] | list[str]) -> None:
    """Import the user's modules (dotted names or .py files) so their Keras classes are registered."""
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
                importlib.import_module(name)
        except ModelError:
            raise
        except Exception as e:  # noqa: BLE001 - user code may raise anything while importing
            raise ModelError(f"importing {name} failed ({type(e).__name__}: {_first_line(e)})",
                             "check that the module imports on its own (python -c 'import ...')") from None


def from_object(model: Any) -> LoadedModel:
    """A model object given through the Python API (any built Keras model, subclassed ones included)."""
    import keras

    if not isinstance(model, keras.Model):
        raise ModelError(f"{type(model).__name__} is not a keras.Model", "give a Keras model object or a model file path")
    model = functional(model)
    return LoadedModel(model, None, "object", _specs(model.inputs), _specs(model.outputs))


def _unsafe_hint(err: Exception) -> bool:
    text = str(err)
    return "safe_mode" in text or "Lambda" in text or "arbitrary code" in text


def load_model(path: Any, safe_mode: bool = True, verbose: bool = False, imports: tuple[str, ...] = ()) -> LoadedModel:
    """Load ``.keras``, ``.h5`` or a SavedModel directory (or take a model object); safe mode unless the
    user opts out. ``imports`` are the user's modules that register custom or subclassed classes."""
    tf = import_tf(verbose)  # first: on a board without TensorFlow, say so before anything else
    if not isinstance(path, (str, os.PathLike)):
        return from_object(path)
    path = Path(path)
    import_user_modules(imports)
    if not path.exists():
        raise ModelError(f"{path}: no such model file", "pass a .keras or .h5 file, or a SavedModel directory")
    import keras

    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ModelError(f"{path} is a directory without saved_model.pb", "pass a SavedModel directory, .keras or .h5")
        kind = "savedmodel"
        try:
            with captured_output(not verbose):
                model = keras.layers.TFSMLayer(str(path), call_endpoint="serving_default")
                model = _wrap_tfsm(keras, tf, model, path)
        except Exception as e:  # noqa: BLE001 - any failure here means "cannot load this SavedModel"
            raise ModelError(f"{path} could not be loaded as a SavedModel ({_first_line(e)})",
                             "re-export it with model.export() or save as .keras") from None
    else:
        if path.suffix.lower() not in KERAS_SUFFIXES:
            raise ModelError(f"{path} is not a Keras model file (expected {', '.join(KERAS_SUFFIXES)} or a SavedModel dir)",
                             "save the model with model.save('model.keras')")
        if path.stat().st_size == 0:
            raise ModelError(f"{path} is empty (0 bytes)", "save the model again")
        kind = "h5" if path.suffix.lower() in (".h5", ".hdf5") else "keras"
        if kind == "keras" and not zipfile.is_zipfile(path):  # Keras would say "File not found"
            raise ModelError(f"{path} is not a valid .keras file (not a complete zip archive)",
                             "check that the file is a complete Keras model (it may be truncated or corrupt)")
        try:
            with captured_output(not verbose):
                model = keras.models.load_model(path, compile=False, safe_mode=safe_mode)
        except Exception as e:  # noqa: BLE001 - loaders raise anything from ValueError to OSError
            unknown = _UNKNOWN_CLASS.search(str(e))
            if unknown:
                raise ConfigError("imports", f"MODULE is needed: {path} uses the custom class {unknown.group(1)}, which is "
                                  "not registered in this process", "give a module or .py file that defines it with "
                                  "@keras.saving.register_keras_serializable(), or give the model object to the Python API"
                                  ) from None
            if safe_mode and _unsafe_hint(e):
                raise ModelError(f"{path} contains a Lambda layer (or other code) that safe mode refuses to load",
                                 "if you trust this file, pass --unsafe") from None
            raise ModelError(f"{path} could not be loaded ({_first_line(e)})",
                             "check that the file is a complete Keras model (it may be truncated or corrupt)") from None
    model = functional(model)
    return LoadedModel(model, path, kind, _specs(model.inputs), _specs(model.outputs))


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
        shape = build.get("input_shape")
    if not shape or isinstance(shape, dict) or isinstance(shape[0], (list, tuple)):
        raise ModelError(f"model {model.name!r} is subclassed and its input shape is unknown",
                         "build it before saving (model(x) or model.build(shape)), or give the Python API a built model")
    inp = keras.Input(shape=tuple(shape[1:]), name="input")
    return keras.Model(inp, model(inp), name=model.name)


def _wrap_tfsm(keras, tf, layer, path: Path):
    import tensorflow as tf  # noqa: F811 - the SavedModel signature is a TF object

    sig = tf.saved_model.load(str(path)).signatures["serving_default"]
    (name, spec), = sig.structured_input_signature[1].items()
    inp = keras.Input(shape=tuple(spec.shape[1:]), name=name, dtype=spec.dtype.name)
    out = layer(inp)
    if isinstance(out, dict):
        out = [out[k] for k in sorted(out)]
        out = out[0] if len(out) == 1 else out
    return keras.Model(inp, out)


def _first_line(e: Exception, limit: int = 300) -> str:
    """The first line of an exception, cut at a sentence or word boundary, never mid-word."""
    lines = str(e).strip().splitlines()
    text = lines[0].strip() if lines else type(e).__name__
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("; "))
    return cut[:end + 1] if end > limit // 2 else cut[:cut.rfind(" ")] + " …"


def _specs(tensors) -> tuple[TensorSpec, ...]:
    out = []
    for i, t in enumerate(tensors):
        shape = tuple(-1 if d is None else int(d) for d in t.shape)
        name = getattr(t, "name", None) or f"tensor_{i}"
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

    from keras_edge.device.bundle import current_umask
    from keras_edge.device.errors import ConfigError

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
