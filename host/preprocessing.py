"""One answer to "what does this model expect as input?", for convert and prune alike.

Both commands must fine-tune, calibrate and evaluate on exactly the preprocessing the board will
apply; resolving the spec in two places is how skew creeps in, so there is one function here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from keras_edge.device.contract import choice
from keras_edge.device.contract import ConfigError, DataError, ModelError
from keras_edge.device.contract import PRESETS, ColorOrder, Interpolation, PreprocessSpec, ResizeMode
from keras_edge.device.contract.preprocess import presets_text

from .model_io import LoadedModel, leading_preprocessing

Log = Callable[[str], None]


@dataclass(frozen=True)
class PreprocessOptions:
    """What the user said about the model's input; anything left ``None`` is inferred from the model."""

    preset: str | None = None
    scale: float | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: ResizeMode = ResizeMode.STRETCH
    interpolation: Interpolation = Interpolation.BILINEAR
    color: ColorOrder | None = None
    input_shape: tuple[int, ...] | None = None   # H, W, C for models whose input size is not fixed
    # per input, by Keras input name (or input_<i>): the shape of each dynamic input of a model with several
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shapes", tuple((str(k), tuple(v)) for k, v in
                                                       (self.input_shapes.items() if isinstance(self.input_shapes, dict)
                                                        else self.input_shapes)))
        for key, shape in self.input_shapes:
            if not shape or any(d <= 0 for d in shape):
                raise ConfigError("input_shape", f"{key}={','.join(map(str, shape))} has a dimension that is not positive",
                                  "give NAME=H,W,C such as image=224,224,3")
        if len({k for k, _ in self.input_shapes}) != len(self.input_shapes):
            raise ConfigError("input_shape", "names the same input twice", "give each input's shape once")
        if self.input_shape is not None and self.input_shapes:
            raise ConfigError("input_shape", "mixes a shape without an input name with named ones",
                              "name every input: NAME=H,W,C")
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError("preset", f"{self.preset!r} is not one of {', '.join(PRESETS)}")
        object.__setattr__(self, "resize", choice("resize", self.resize, ResizeMode))
        object.__setattr__(self, "interpolation", choice("interpolation", self.interpolation, Interpolation))
        if self.color is not None:
            object.__setattr__(self, "color", choice("color", self.color, ColorOrder))
        if self.input_shape is not None and (not self.input_shape or any(d <= 0 for d in self.input_shape)):
            raise ConfigError("input_shape", f"{self.input_shape} has a dimension that is not positive",
                              "give H,W,C such as 224,224,3")

    @property
    def explicit(self) -> bool:
        return self.scale is not None or self.mean is not None or self.std is not None


def _dims(shape) -> str:
    return ", ".join("?" if d == -1 else str(d) for d in shape)


def _fit(given: tuple[int, ...], shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    if len(given) != len(shape) or any(d not in (-1, g) for d, g in zip(shape, given)):
        raise ConfigError("input_shape", f"{','.join(map(str, given))} does not fit {what} ({_dims(shape)})",
                          "give the shape without the batch dimension, e.g. 224,224,3")
    return tuple(given)


def input_shapes(loaded: LoadedModel, options: PreprocessOptions) -> tuple[tuple[int, ...], ...]:
    """Every input's shape without the batch dimension, in the model's input order; dynamic dimensions are
    fixed by ``options.input_shape`` (a single-input model) or ``options.input_shapes`` (by input name)."""
    specs = loaded.inputs
    names = [t.name for t in specs]
    named = dict(options.input_shapes)
    if options.input_shape is not None:
        if len(specs) != 1:
            raise ConfigError("input_shape", f"gives one shape but the model has {len(specs)} inputs ({', '.join(names)})",
                              f"give one per dynamic input as NAME=H,W,C, e.g. {names[0]}=...")
        named = {names[0]: tuple(options.input_shape)}
    index = {**{f"input_{i}": i for i in range(len(specs))}, **{n: i for i, n in enumerate(names)}}
    unknown = [k for k in named if k not in index]
    if unknown:
        raise ConfigError("input_shape", f"names no input of the model: {', '.join(unknown)} (its inputs: {', '.join(names)})",
                          "name inputs by their Keras names or as input_0, input_1, …")
    given = {index[k]: v for k, v in named.items()}
    shapes = []
    for i, t in enumerate(specs):
        shape = tuple(t.shape[1:])
        what = "the model's input" if len(specs) == 1 else f"input {t.name}"
        if i in given:
            shapes.append(_fit(given[i], shape, what))
        elif any(d == -1 for d in shape):
            fix = "give H,W,C" if len(specs) == 1 else f"give {t.name}=H,W,C (one per dynamic input)"
            where = "the model's input size" if len(specs) == 1 else f"the size of input {t.name}"
            raise ConfigError("input_shape", f"is needed: {where} is unknown ({_dims(shape)})", fix)
        else:
            shapes.append(shape)
    return tuple(shapes)


def input_shape(loaded: LoadedModel, options: PreprocessOptions) -> tuple[int, ...]:
    """The input shape of a single-input model without the batch dimension (for commands that take one input)."""
    if len(loaded.inputs) != 1:
        raise ModelError(f"the model has {len(loaded.inputs)} inputs; this command supports single-input models",
                         "wrap the model so it takes one input")
    return input_shapes(loaded, options)[0]


def resolve_spec(loaded: LoadedModel, shape: tuple[int, ...], options: PreprocessOptions,
                 log: Log = lambda s: None) -> PreprocessSpec:
    """The preprocessing spec for an image model: stated by the user, or read off a leading
    Rescaling/Normalization layer (then the model takes raw 0..255 pixels)."""
    if len(shape) != 3 or shape[-1] not in (1, 3):
        raise ModelError(f"input shape {shape} is not an image (H, W, 1|3)",
                         "calibrate non-image models with a .npy/.npz file of inputs")
    h, w, c = shape
    common: dict[str, Any] = dict(resize=options.resize, interpolation=options.interpolation)
    if options.color and c == 3:
        common["color"] = options.color
    lead = leading_preprocessing(loaded.model)
    read = (loaded.graph_rescaling or {}).get(loaded.inputs[0].name) if loaded.kind == "savedmodel" else None
    if read and not (options.preset or options.explicit):
        return PreprocessSpec.from_preset("raw", h, w, c, reason=f"read from the SavedModel graph: {read}; the "
                                          "model takes raw 0..255 pixels", **common)
    if lead and not (options.preset or options.explicit):
        kinds = ", ".join(type(layer).__name__ for layer in lead)
        return PreprocessSpec.from_preset("raw", h, w, c, reason=f"the model starts with {kinds}: it takes raw 0..255 pixels",
                                          **common)
    if options.explicit:
        base = PreprocessSpec.from_preset(options.preset or "raw", h, w, c)
        return PreprocessSpec(height=h, width=w, channels=c,
                              scale=options.scale if options.scale is not None else base.scale,
                              mean=options.mean or base.mean, std=options.std or base.std, preset="custom",
                              reason="explicit scale/mean/std", **common)
    if not options.preset and loaded.kind == "savedmodel":
        raise ConfigError("preset", "is needed: no rescaling of the input could be read from the SavedModel graph, so "
                          "keras-edge cannot tell how its inputs were normalised",
                          f"state it: one of {presets_text()} (or scale/mean/std)")
    if not options.preset:
        raise ConfigError("preset", "is needed: the model does not start with a Rescaling/Normalization layer, so "
                          "keras-edge cannot tell how its inputs were normalised",
                          f"give one of {presets_text()} (or scale/mean/std)")
    if lead:
        log(f"note: the model starts with {type(lead[0]).__name__} but preset {options.preset} was given; using it")
    return PreprocessSpec.from_preset(options.preset, h, w, c, reason=f"preset {options.preset}", **common)


def spec_for_data(loaded: LoadedModel, options: PreprocessOptions, data: Path | None,
                  log: Log = lambda s: None) -> tuple[tuple[int, ...], PreprocessSpec | None]:
    """Shape and spec for a data source: arrays (.npy/.npz) are already preprocessed, images are not."""
    shapes, specs = specs_for_data(loaded, options, data, log)
    return shapes[0], specs[0]


def specs_for_data(loaded: LoadedModel, options: PreprocessOptions, data: Path | None,
                   log: Log = lambda s: None) -> tuple[tuple[tuple[int, ...], ...], tuple[PreprocessSpec | None, ...]]:
    """Every input's shape and spec: arrays (.npy/.npz) are already preprocessed; images feed a single input."""
    from keras_edge.calibration.dataset import ARRAY_EXTENSIONS

    shapes = input_shapes(loaded, options)
    if data is not None and Path(data).suffix.lower() in ARRAY_EXTENSIONS:
        return shapes, tuple(None for _ in shapes)
    if len(shapes) > 1:
        names = ", ".join(t.name for t in loaded.inputs)
        raise DataError(f"{data} holds images, but the model has {len(shapes)} inputs ({names}) and images feed only one",
                        f"give an .npz with one array per input, keyed by input name ({names}) or input_0..input_"
                        f"{len(shapes) - 1}")
    return shapes, (resolve_spec(loaded, shapes[0], options, log),)
