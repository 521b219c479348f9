"""The built-in demo: a small CNN trained on scikit-learn's handwritten digits, converted to a bundle.

The digits (real data shipped inside scikit-learn) are written out as an ImageFolder of 32×32
grayscale PNGs, so the demo exercises the same image path a user's data takes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SIZE = 32


@dataclass(frozen=True)
class DemoData:
    model: Path
    train: Path
    eval: Path
    keras_accuracy: float


def digits_images(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8×8 digits as uint8 (N, size, size) images and their labels."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    img8 = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    imgs = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_LINEAR) for im in img8])
    return imgs, d.target.astype(np.int64)


def write_image_folder(root: Path, imgs: np.ndarray, labels: np.ndarray, names: list[str]) -> None:
    import cv2

    for c in sorted(set(labels.tolist())):
        (root / names[c]).mkdir(parents=True, exist_ok=True)
    for i, (im, lbl) in enumerate(zip(imgs, labels)):
        cv2.imwrite(str(root / names[lbl] / f"{i:04d}.png"), im)


def build_model(num_classes: int = 10, size: int = SIZE, width: int = 32):
    """A small CNN that starts with Rescaling, so it takes raw pixels."""
    import keras
    from keras import layers

    inp = keras.Input((size, size, 1), name="pixels")
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(2 * width, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(4 * width, 3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    out = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inp, out, name="digits_cnn")


def prepare(workdir: str | Path, epochs: int = 40, seed: int = 0, log: Callable[[str], None] = lambda s: None) -> DemoData:
    """Write the digits image folders and train+save the model (skipped when already there, and said so)."""
    from sklearn.model_selection import train_test_split

    from keras_edge.host.tfenv import captured_output, import_tf

    work = Path(workdir)
    model_path = work / "digits.keras"
    train_dir, eval_dir = work / "data" / "train", work / "data" / "eval"
    imgs, labels = digits_images()
    tr_i, ev_i = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=seed)
    names = [str(i) for i in range(10)]
    if not train_dir.is_dir() or not eval_dir.is_dir():
        write_image_folder(train_dir, imgs[tr_i], labels[tr_i], names)
        write_image_folder(eval_dir, imgs[ev_i], labels[ev_i], names)
    import_tf()
    import keras

    if model_path.is_file():
        log(f"demo: loading the model trained before, {model_path} (delete it to train again)")
        model = keras.models.load_model(model_path)
    else:
        log(f"demo: training a CNN on scikit-learn's digits ({epochs} epochs) into {model_path} …")
        keras.utils.set_random_seed(seed)
        model = build_model()
        model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        with captured_output():
            model.fit(imgs[tr_i][..., None].astype("float32"), labels[tr_i], epochs=epochs, batch_size=32, verbose=0)
        work.mkdir(parents=True, exist_ok=True)
        tmp = model_path.with_suffix(".partial.keras")
        model.save(tmp)
        tmp.replace(model_path)
    with captured_output():
        pred = model.predict(imgs[ev_i][..., None].astype("float32"), verbose=0)
    acc = float(np.mean(pred.argmax(1) == labels[ev_i]))
    return DemoData(model_path, train_dir, eval_dir, acc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="keras-edge demo: digits CNN → bundle")
    ap.add_argument("--workdir", default="build/demo")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--quiet", action="store_true", help="Only errors.")
    ap.add_argument("--no-table", action="store_true", help="Do not print the variant table.")
    args = ap.parse_args(argv)

    from keras_edge.host.convert import ConvertConfig, convert
    from keras_edge.host.report.render import table

    say = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    data = prepare(args.workdir, epochs=args.epochs, log=say)
    say(f"demo: keras model {data.model} (accuracy {data.keras_accuracy:.4f} on the eval folder)")
    cfg = ConvertConfig(model=data.model, out=Path(args.workdir) / "bundles" / "digits", calib=data.train,
                        eval=data.eval, variants=VARIANTS, name="digits")
    say("demo: converting, as `keras-edge " + " ".join(convert_args(data, cfg.out)) + "` does")
    result = convert(cfg, log=say)
    if not args.no_table:
        print(table(result.to_dict()))
        print(f"\ndefault: {result.manifest.default} ({result.manifest.default_reason})")
        print("\n".join(closing_lines(result.bundle, data, time.perf_counter() - t0)))
    return 0


VARIANTS = ("fp32", "fp16", "dynamic", "int8", "int16x8")


def convert_args(data: DemoData, out: Path) -> list[str]:
    """The `keras-edge convert` arguments that make the demo's bundle (the README's tour starts from them)."""
    return ["convert", str(data.model), "-o", str(out), "--calib", str(data.train), "--eval", str(data.eval),
            "--variants", ",".join(VARIANTS), "--name", "digits"]


def command_hint() -> tuple[str, str | None]:
    """How to call `keras-edge` from here: its name when this environment is on PATH, else its full path,
    and the line that activates the environment (None when it is active)."""
    exe = Path(sys.executable).parent / "keras-edge"
    if not exe.is_file() or shutil.which("keras-edge") == str(exe):
        return "keras-edge", None
    activate = exe.parent / "activate"
    here = os.path.relpath(activate)   # `make demo` runs in the clone: .venv/bin/activate
    return str(exe), (f"source {activate if here.startswith('..') else here}" if activate.is_file() else None)


def closing_lines(bundle: Path, data: DemoData, seconds: float) -> list[str]:
    """Where the results are and what to type next (the README's tour uses this bundle)."""
    exe, activate = command_hint()
    image = next(iter(sorted(Path(data.eval).glob("*/*.png"))), data.eval)
    lines = [f"bundle: {bundle}   ({seconds:.0f}s in all)",
             f"report: {bundle / 'report.md'} (every variant, a legend of the columns) and {bundle / 'report.png'}"]
    if activate:
        lines.append(f"next: `{activate}` (the environment `make setup` made; or call {exe}), then:")
        exe = "keras-edge"
    else:
        lines.append("next:")
    lines += [f"  {exe} run {bundle} {image}", f"  {exe} verify {bundle}",
              f"  {exe} bench {bundle} --variant all",
              "  your own model: the README's tour, from `keras-edge convert` (the demo ran: keras-edge "
              + " ".join(convert_args(data, bundle)) + ")"]
    return lines


if __name__ == "__main__":
    sys.exit(main())
