"""Loading Keras models safely and reading what the converter needs from them."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keras_edge.device.bundle import TensorSpec
from keras_edge.device.errors import ModelError

from .tfenv import captured_output, import_tf

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass(frozen=True)
class LoadedModel:
    model: Any               # keras.Model
    path: Path
    kind: str                # "keras" | "h5" | "savedmodel"
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


def _unsafe_hint(err: Exception) -> bool:
    text = str(err)
    return "safe_mode" in text or "Lambda" in text or "arbitrary code" in text


def load_model(path: str | os.PathLike, safe_mode: bool = True, verbose: bool = False) -> LoadedModel:
    """Load ``.keras``, ``.h5`` or a SavedModel directory; safe mode unless the user opts out."""
    tf = import_tf(verbose)  # first: on a board without TensorFlow, say so before anything else
    path = Path(path)
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
            if safe_mode and _unsafe_hint(e):
                raise ModelError(f"{path} contains a Lambda layer (or other code) that safe mode refuses to load",
                                 "if you trust this file, pass --unsafe") from None
            raise ModelError(f"{path} could not be loaded ({_first_line(e)})",
                             "check that the file is a complete Keras model (it may be truncated or corrupt)") from None
    return LoadedModel(model, path, kind, _specs(model.inputs), _specs(model.outputs))


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


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


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
