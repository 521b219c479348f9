"""One answer to "what does this model expect as input?", for convert and prune alike.

Both commands must fine-tune, calibrate and evaluate on exactly the preprocessing the board will
apply; resolving the spec in two places is how skew creeps in, so there is one function here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from keras_edge.device.checks import choice
from keras_edge.device.errors import ConfigError, ModelError
from keras_edge.device.preprocess import PRESETS, ColorOrder, Interpolation, PreprocessSpec, ResizeMode

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

    def __post_init__(self) -> None:
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


def input_shape(loaded: LoadedModel, options: PreprocessOptions) -> tuple[int, ...]:
    """The model's input shape without the batch dimension, fixed by ``options.input_shape`` when dynamic."""
    if len(loaded.inputs) != 1:
        raise ModelError(f"the model has {len(loaded.inputs)} inputs; keras-edge supports single-input models",
                         "wrap the model so it takes one input")
    shape = loaded.inputs[0].shape[1:]
    if options.input_shape:
        given = tuple(options.input_shape)
        if len(given) != len(shape) or any(d not in (-1, g) for d, g in zip(shape, given)):
            raise ConfigError("input_shape", f"{given} does not fit the model's input "
                              f"({', '.join('?' if d == -1 else str(d) for d in shape)})",
                              "give the shape without the batch dimension, e.g. 224,224,3")
        return given
    if any(d == -1 for d in shape):
        raise ConfigError("input_shape", f"is needed: the model's input size is unknown "
                          f"({', '.join('?' if d == -1 else str(d) for d in shape)})", "give H,W,C")
    return tuple(shape)


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
    if not options.preset:
        raise ConfigError("preset", "is needed: the model does not start with a Rescaling/Normalization layer, so "
                          "keras-edge cannot tell how its inputs were normalised",
                          f"give one of {'|'.join(PRESETS)} (or scale/mean/std)")
    if lead:
        log(f"note: the model starts with {type(lead[0]).__name__} but preset {options.preset} was given; using it")
    return PreprocessSpec.from_preset(options.preset, h, w, c, reason=f"preset {options.preset}", **common)


def spec_for_data(loaded: LoadedModel, options: PreprocessOptions, data: Path | None,
                  log: Log = lambda s: None) -> tuple[tuple[int, ...], PreprocessSpec | None]:
    """Shape and spec for a data source: arrays (.npy/.npz) are already preprocessed, images are not."""
    from keras_edge.calibration.dataset import ARRAY_EXTENSIONS

    shape = input_shape(loaded, options)
    if data is not None and Path(data).suffix.lower() in ARRAY_EXTENSIONS:
        return shape, None
    return shape, resolve_spec(loaded, shape, options, log)
