"""What ``run`` and ``bench`` point at: a bundle directory (checked) or any ``.tflite`` file.

A bare ``.tflite`` has no manifest, so the runner infers the preprocessing from the input tensor and
records each assumption in ``Target.assumptions`` so that it is printed, never silent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..contract.bundle import MANIFEST, Manifest, Task, TensorSpec, Variant, check_variant, parse_labels, read_labels, read_manifest
from ..contract.errors import BundleError, ConfigError, DataError
from ..contract.preprocess import presets_text
from ..inputs.preprocess import PreprocessSpec


@dataclass(frozen=True)
class Target:
    """One model file to run, with what the bundle (if any) says about it."""

    model: Path
    name: str
    variant: Variant | None = None
    manifest: Manifest | None = None
    labels: tuple[str, ...] | None = None
    assumptions: tuple[str, ...] = field(default=())

    @property
    def task(self) -> Task | None:
        return self.manifest.task if self.manifest else None

    @property
    def spec(self) -> PreprocessSpec | None:
        return self.manifest.preprocess if self.manifest else None

    @property
    def input_shapes(self) -> tuple[tuple[int, ...] | None, ...]:
        """Shapes to give dynamic inputs, from the manifest (batch 1)."""
        if not self.variant:
            return ()
        return tuple(tuple(1 if (k == 0 and d < 0) else d for k, d in enumerate(t.shape)) for t in self.variant.inputs)


def is_bundle(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and (Path(path) / MANIFEST).is_file()


def variant_names(bundle_dir: str | os.PathLike, which: str | None) -> list[str]:
    """``None``/default → the manifest's default (or first usable), ``all`` → every usable variant, else names."""
    m = read_manifest(bundle_dir)
    if which == "all":
        return [v.name for v in m.usable]
    if which:
        names = [w.strip() for w in which.split(",") if w.strip()]
        for n in names:
            m.variant(n)
        return names
    if m.default:
        return [m.default]
    if not m.usable:
        raise BundleError(f"bundle {m.name!r} has no usable variant", "reconvert the model")
    return [m.usable[0].name]


def open_target(path: str | os.PathLike, variant: str | None = None, labels: str | None = None) -> Target:
    """Resolve a bundle variant (checksum verified) or a bare ``.tflite``."""
    p = Path(path)
    if is_bundle(p):
        m = read_manifest(p)
        v = m.variant(variant_names(p, variant)[0] if not variant else variant)
        model = check_variant(p, v)
        names = read_labels(p, m) if not labels else _read_label_file(labels)
        return Target(model=model, name=f"{m.name}/{v.name}", variant=v, manifest=m,
                      labels=tuple(names) if names else None)
    if p.is_dir():
        raise BundleError(f"{p} has no {MANIFEST}", "give a bundle directory written by `keras-edge convert` or a .tflite file")
    if variant:
        raise ConfigError("variant", f"{variant} needs a bundle, but {p} is a single model file",
                          "leave it out for a .tflite file")
    names = _read_label_file(labels) if labels else None
    return Target(model=p, name=p.stem, labels=tuple(names) if names else None)


def _read_label_file(path: str) -> list[str]:
    if not os.path.lexists(path):
        raise ConfigError("labels", f"{path}: no such file", "give a text file with one class name per line")
    return parse_labels(path)   # regular file, UTF-8, within the labels limits


def infer_spec(tensor: TensorSpec, preset: str | None) -> tuple[PreprocessSpec, list[str]]:
    """A preprocessing spec for a bare model's image input, and the assumptions it rests on."""
    from ..inputs.pipeline import image_dims

    dims = image_dims(tensor)
    if dims is None:
        raise DataError(f"input {tensor.name} has shape {list(tensor.shape)}, which is not an image",
                        "feed arrays (.npy/.npz) instead of images")
    _, h, w, c = dims
    kind = np.dtype(tensor.dtype).kind
    if preset:
        spec = PreprocessSpec.from_preset(preset, h, w, c)
        return spec, [f"preprocessing {preset!r} as given"]
    if kind in "iu" and tensor.quantized:
        # the common convention for integer-input models: the quantized value *is* the pixel
        # (uint8 q = p, int8 q = p - 128); express that as a float spec that quantizes back exactly
        shift = 128 if np.dtype(tensor.dtype) == np.int8 else 0
        mean = tensor.scale * (tensor.zero_point + shift)
        spec = PreprocessSpec(height=h, width=w, channels=c, scale=tensor.scale, mean=(mean,), std=(1.0,),
                              preset="custom", reason="inferred from the input's quantization")
        return spec, [f"{tensor.dtype} input takes pixel values directly (q = pixel{' - 128' if shift else ''}); "
                      "give a preprocessing preset to override"]
    spec = PreprocessSpec.from_preset("unit", h, w, c)
    return spec, [f"float input normalised to [0, 1] (preset 'unit'); pass --preprocess if the model expects another "
                  f"range ({presets_text()})"]
