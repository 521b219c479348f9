"""The benchmarked models, built locally (weights=None, nothing downloaded) and converted with the real converter.

Bundles are kept under ``build/bench`` and reused while the converter's sources are unchanged (a stamp
holds their hash), so a second ``make bench`` spends its time measuring rather than converting.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .common import WORK, calibration_folder

VARIANTS = ("fp32", "fp16", "dynamic", "int8")
# the converter's behaviour (variants, validation, default choice) lives in these files
CONVERTER_SOURCES = ("host/convert.py", "host/variants.py", "host/selective.py", "host/evaluate.py",
                     "calibration/dataset.py")


@dataclass(frozen=True)
class BenchModel:
    """A Keras model file, its bundle, and how its inputs are normalised."""

    name: str
    keras_path: Path
    bundle: Path
    preset: str | None          # None: the model normalises raw pixels itself
    input_shape: tuple[int, int, int]
    calib: Path


def _build_mobilenetv2():
    import keras

    return keras.applications.MobileNetV2(alpha=1.0, input_shape=(224, 224, 3), weights=None)


def _build_efficientnetb0():
    import keras

    # EfficientNet starts with Rescaling + Normalization: it takes raw 0..255 pixels
    return keras.applications.EfficientNetB0(input_shape=(224, 224, 3), weights=None)


IMAGENET: dict[str, tuple[Callable, str | None]] = {
    "mobilenetv2": (_build_mobilenetv2, "tf"),
    "efficientnetb0": (_build_efficientnetb0, None),
}


def _keras_file(name: str, build: Callable) -> Path:
    import keras

    path = WORK / f"{name}.keras"
    if not path.is_file():
        keras.utils.set_random_seed(0)   # weights=None: seeded random weights, the same every run
        WORK.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial.keras")
        build().save(tmp)
        tmp.replace(path)
    return path


def converter_hash() -> str:
    """Hash of the converter's sources: a stale bundle is reconverted, an unchanged one reused."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in CONVERTER_SOURCES:
        p = root / rel
        h.update(rel.encode() + (p.read_bytes() if p.is_file() else b""))
    return h.hexdigest()[:16]


def _stamp(bundle: Path) -> Path:
    return bundle.with_name(f"{bundle.name}.stamp.json")   # beside the bundle: the bundle stays as convert wrote it


def _fresh(bundle: Path, key: str) -> bool:
    stamp = _stamp(bundle)
    return bundle.is_dir() and stamp.is_file() and json.loads(stamp.read_text()).get("key") == key


def convert_bundle(keras_path: Path, out: Path, calib: Path, preset: str | None, eval_dir: Path | None = None,
                   variants: tuple[str, ...] = VARIANTS, reconvert: bool = False, budget: bool = True,
                   log=print, board: str | None = None) -> Path:
    """Convert with ``keras_edge.host.convert`` unless an up-to-date bundle is already there.

    ``budget=False``: the loosest accuracy budget the converter accepts (99.9%: nearly every validated
    variant fits, so the default is the fastest it measured) and no int8-selective search.
    """
    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.preprocessing import PreprocessOptions

    key = f"{converter_hash()}:{keras_path.stat().st_mtime_ns}:{','.join(variants)}:{preset}:{budget}:{board}"
    if not reconvert and _fresh(out, key):
        log(f"  reusing {out} (converter unchanged)")
        return out
    off = {} if budget else dict(max_accuracy_drop=0.999, selective=False)
    cfg = ConvertConfig(model=keras_path, out=out, calib=calib, eval=eval_dir, variants=variants, preprocess=PreprocessOptions(preset=preset),
                        calib_samples=32, eval_samples=16, name=keras_path.stem, board=board, **off)
    result = convert(cfg, log=lambda s: log(f"  {s}"))
    _stamp(out).write_text(json.dumps({"key": key}))   # written last: a bundle without it is reconverted
    return result.bundle


def imagenet_model(name: str, reconvert: bool = False, log=print) -> BenchModel:
    """MobileNetV2 or EfficientNetB0 (224, weights=None), converted and calibrated on real photos."""
    build, preset = IMAGENET[name]
    calib = calibration_folder(WORK / "calib")
    keras_path = _keras_file(name, build)
    # (Almost) no accuracy budget: a random network's softmax over 1000 classes is nearly flat, so top-1
    # agreement is decided by near-ties and a uint8 output rounds every score to the same step;
    # "disagreement" there says nothing about int8, and the selective search would chase noise.
    bundle = convert_bundle(keras_path, WORK / "bundles" / name, calib, preset, reconvert=reconvert, budget=False,
                            log=log)
    return BenchModel(name, keras_path, bundle, preset, (224, 224, 3), calib)


def digits_model(reconvert: bool = False, log=print) -> BenchModel:
    """The demo's digits CNN (trained here on scikit-learn's digits), converted with its eval folder."""
    from keras_edge.demo import prepare

    data = prepare(WORK / "digits")
    bundle = convert_bundle(data.model, WORK / "bundles" / "digits", data.train, None, data.eval,
                            reconvert=reconvert, log=log)
    return BenchModel("digits", data.model, bundle, None, (32, 32, 1), data.train)


def mobilenet_bundle(bundle: Path, log=print) -> Path:
    """``bundle`` when it holds a bundle, else the MobileNetV2 bench bundle (converted when missing: imports TensorFlow)."""
    if (Path(bundle) / "manifest.json").is_file():
        return Path(bundle)
    return imagenet_model("mobilenetv2", False, log).bundle
