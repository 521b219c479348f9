"""The preprocessing spec: what the manifest says about turning an image into the model's input.

The spec is written once, at convert time, into the manifest. Calibration on the host and the
runner on the board both call :func:`keras_edge.device.inputs.preprocess.preprocess`, its one
implementation, so what calibration sees is exactly what the board feeds the model.

Normalisation is ``(pixel * scale - mean) / std`` per channel, applied after colour conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable

from .errors import ConfigError, DataError


class ResizeMode(StrEnum):
    STRETCH = "stretch"      # resize to the target size, ignoring aspect ratio
    CROP = "crop"            # centre-crop to the target aspect ratio, then resize
    LETTERBOX = "letterbox"  # resize to fit inside the target, pad the rest


class Interpolation(StrEnum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    AREA = "area"
    BICUBIC = "bicubic"


class ColorOrder(StrEnum):
    RGB = "rgb"
    BGR = "bgr"
    GRAY = "gray"


@dataclass(frozen=True)
class Normalization:
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _norm(scale: float, mean=(0.0,), std=(1.0,)) -> Normalization:
    return Normalization(float(scale), tuple(float(m) for m in mean), tuple(float(s) for s in std))


# Named like keras.applications' preprocessing modes; the CLI's choices come from these keys.
PRESETS: dict[str, Callable[[], tuple[Normalization, ColorOrder | None]]] = {
    "tf": lambda: (_norm(1 / 127.5, (1.0,), (1.0,)), None),                           # [-1, 1]
    "torch": lambda: (_norm(1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), ColorOrder.RGB),
    "caffe": lambda: (_norm(1.0, (103.939, 116.779, 123.68), (1.0,)), ColorOrder.BGR),
    "unit": lambda: (_norm(1 / 255), None),                                            # [0, 1]
    "raw": lambda: (_norm(1.0), None),                                                 # 0..255
}


def _num(v: float) -> str:
    return f"{v:.6g}"


def describe_preset(name: str) -> str:
    """What a preset computes, in words made from its registry entry: ``x/127.5 - 1 → [-1, 1]``."""
    norm, color = PRESETS[name]()
    x = "x" if norm.scale == 1 else f"x/{_num(1 / norm.scale)}"
    if any(norm.mean):
        x = f"{x} - {_num(norm.mean[0])}" if len(norm.mean) == 1 else f"{x} - ({', '.join(map(_num, norm.mean))})"
    if any(s != 1 for s in norm.std):
        x = f"({x}) / {_num(norm.std[0])}" if len(norm.std) == 1 else f"({x}) / ({', '.join(map(_num, norm.std))})"
    if len(norm.mean) == 1 and len(norm.std) == 1:
        lo, hi = ((v * norm.scale - norm.mean[0]) / norm.std[0] for v in (0, 255))
        x += f" → [{_num(round(lo, 4))}, {_num(round(hi, 4))}]"
    else:
        x += " per channel"
    return x + (f", {color.value.upper()} channel order" if color is not None else "")


def presets_text(sep: str = "; ") -> str:
    """Every preset and what it computes on a pixel x in 0..255 (for --help, the README and errors)."""
    return sep.join(f"{name}: {describe_preset(name)}" for name in PRESETS)


@dataclass(frozen=True)
class PreprocessSpec:
    """What turns a decoded image into the model's input tensor (before quantisation)."""

    height: int
    width: int
    channels: int = 3
    color: ColorOrder = ColorOrder.RGB
    resize: ResizeMode = ResizeMode.STRETCH
    interpolation: Interpolation = Interpolation.BILINEAR
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    preset: str = "raw"
    baked: bool = False          # normalisation folded into the graph: the model takes raw pixels
    pad_value: int = 0
    reason: str = ""             # why this spec was chosen (shown to the user, kept in the manifest)
    tolerance: float = field(default=1e-5, compare=False)

    def __post_init__(self) -> None:
        for name in ("color", "resize", "interpolation"):
            enum = {"color": ColorOrder, "resize": ResizeMode, "interpolation": Interpolation}[name]
            try:
                object.__setattr__(self, name, enum(getattr(self, name)))
            except ValueError:
                raise DataError(f"unknown {name} {getattr(self, name)!r}",
                                f"use one of: {', '.join(e.value for e in enum)}") from None
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.height <= 0 or self.width <= 0:
            raise ConfigError("input_shape", f"{self.height}x{self.width} is not positive", "give H,W,C such as 224,224,3")
        if self.channels not in (1, 3):
            raise DataError(f"{self.channels}-channel image input is not supported", "image models take 1 or 3 channels")
        if self.channels == 1 and self.color is not ColorOrder.GRAY:
            object.__setattr__(self, "color", ColorOrder.GRAY)
        for vec, what in ((self.mean, "mean"), (self.std, "std")):
            if len(vec) not in (1, self.channels):
                want = "one value (the input is gray, 1 channel)" if self.channels == 1 else \
                    f"one value for all channels or {self.channels}, one per channel"
                raise ConfigError(what, f"has {len(vec)} values for a {self.channels}-channel input", f"give {want}")
        if any(s == 0 for s in self.std):
            raise ConfigError("std", "contains 0", "every std value must be non-zero")

    @classmethod
    def from_preset(cls, preset: str, height: int, width: int, channels: int = 3, **kw: Any) -> "PreprocessSpec":
        if preset not in PRESETS:
            raise DataError(f"unknown preprocessing preset {preset!r}", f"use one of: {', '.join(PRESETS)}")
        norm, color = PRESETS[preset]()
        if color is not None and channels == 3:
            kw.setdefault("color", color)
        if channels == 1:
            mean, std = norm.mean[:1], norm.std[:1]
        else:
            mean, std = norm.mean, norm.std
        return cls(height=height, width=width, channels=channels, scale=norm.scale, mean=mean, std=std,
                   preset=preset, **kw)

    @property
    def identity_normalization(self) -> bool:
        return self.scale == 1.0 and all(m == 0 for m in self.mean) and all(s == 1 for s in self.std)

    def to_dict(self) -> dict[str, Any]:
        return {"height": self.height, "width": self.width, "channels": self.channels,
                "color": str(self.color), "resize": str(self.resize), "interpolation": str(self.interpolation),
                "scale": self.scale, "mean": list(self.mean), "std": list(self.std), "preset": self.preset,
                "baked": self.baked, "pad_value": self.pad_value, "reason": self.reason}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        return cls(height=int(d["height"]), width=int(d["width"]), channels=int(d.get("channels", 3)),
                   color=d.get("color", "rgb"), resize=d.get("resize", "stretch"),
                   interpolation=d.get("interpolation", "bilinear"), scale=float(d.get("scale", 1.0)),
                   mean=tuple(d.get("mean", (0.0,))), std=tuple(d.get("std", (1.0,))),
                   preset=str(d.get("preset", "raw")), baked=bool(d.get("baked", False)),
                   pad_value=int(d.get("pad_value", 0)), reason=str(d.get("reason", "")))
