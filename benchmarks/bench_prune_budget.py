"""Prune to an accuracy budget: the measured curve and the chosen point, int8 latency side by side.

    python benchmarks/bench_prune_budget.py [--out benchmarks/results/prune_budget.json] [--budget 0.01]

Three models trained here on scikit-learn's digits at 48×48 (1437 training images, 360 held out, stratified):
1. the digits CNN: Rescaling → Conv 32 → pool → Conv 64 → pool → Conv 128 → GAP → Dense 10,
2. a separable-convolution residual CNN (stem Conv 32, two residual stages of SeparableConv2D + BN +
   ReLU with Add shortcuts, widths 64 and 128),
3. issue 24's digits CNN with BatchNorm (Conv 32/64/128 with ReLU, then BN; trained 25 epochs), whose int8 loses
   several points against float: the budget is pruning's own cost (pruned int8 against unpruned int8), so
   that int8's loss never counts as pruning's.
Each goes through ``keras_edge.host.prune.search`` (sensitivity scan, per-layer sparsities, fine-tuning
with early stopping, int8 conversion, latency timed side by side with the unpruned int8 model in LiteRT)
with a 1 pp budget of pruning cost on the held-out images (quantization's own loss reported beside it). The fine-tuning time
is the search's wall time on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "prune_budget.json"
SIZE = 48


def say(msg: str) -> None:
    print(f"[prune_budget] {msg}", file=sys.stderr, flush=True)


def digits_cnn(keras: Any) -> Any:
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Rescaling(1 / 255)(inp)
    for i, w in enumerate((32, 64, 128)):
        x = layers.Conv2D(w, 3, padding="same", activation="relu")(x)
        x = layers.MaxPooling2D()(x) if i < 2 else layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="digits_cnn_48")


def digits_cnn_bn(keras: Any) -> Any:
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Rescaling(1 / 255)(inp)
    for i, w in enumerate((32, 64, 128)):
        # BatchNorm after the ReLU (a common Keras order): it cannot fold into the convolution, so int8 quantizes
        # the ReLU output per tensor before the per-channel scale: int8 loses points here
        x = layers.BatchNormalization()(layers.Conv2D(w, 3, padding="same", activation="relu")(x))
        x = layers.MaxPooling2D()(x) if i < 2 else layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="digits_cnn_bn_48")


EPOCHS = {"digits_cnn_bn_48": 25}   # the training length (int8 then loses several points)


def separable_resnet(keras: Any) -> Any:
    from keras import layers

    inp = keras.Input((SIZE, SIZE, 1))
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)))
    for w in (64, 128):
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(w, 1, use_bias=False)(x)))
        y = layers.ReLU()(layers.BatchNormalization()(layers.SeparableConv2D(w, 3, padding="same", use_bias=False)(x)))
        y = layers.BatchNormalization()(layers.SeparableConv2D(w, 3, padding="same", use_bias=False)(y))
        x = layers.ReLU()(layers.Add()([x, y]))
        x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="separable_resnet_48")


def data() -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    from keras_edge.demo import digits_images

    imgs, labels = digits_images(SIZE)
    x = imgs[..., None].astype(np.float32)
    tr, ev = train_test_split(np.arange(len(labels)), test_size=0.2, stratify=labels, random_state=0)
    return x[tr], labels[tr], x[ev], labels[ev]


def train(model: Any, x: np.ndarray, y: np.ndarray, epochs: int) -> float:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, shuffle=True,
              callbacks=[keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.3, patience=2, verbose=0)])
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--budget", type=float, default=0.01)
    ap.add_argument("--epochs", type=int, default=30, help="training epochs of the unpruned models")
    ap.add_argument("--threads", type=int, default=None, help="interpreter threads for int8 latency (default: all cores)")
    ap.add_argument("--models", default="digits_cnn_48,separable_resnet_48,digits_cnn_bn_48",
                    help="which models (the others' results already in --out are kept)")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.common import environment

    from keras_edge.host.prune.search import SearchConfig, search
    from keras_edge.host.tfenv import captured_output, import_tf

    import_tf()
    import keras

    x, y, xv, yv = data()
    env = environment().__dict__
    out: dict[str, Any] = {"environment": env, "budget": args.budget, "eval_images": int(len(yv)),
                           "train_images": int(len(y)), "models": {}}
    if args.out.is_file():   # models not run this time keep their results (each with the environment it ran in)
        old = json.loads(args.out.read_text())
        out["models"] = {k: {"environment": v.get("environment", old.get("environment")), **v}
                         for k, v in old.get("models", {}).items()}
    chosen = set(args.models.split(","))
    for build in (digits_cnn, separable_resnet, digits_cnn_bn):
        keras.utils.set_random_seed(0)
        model = build(keras)
        if model.name not in chosen:
            continue
        epochs = EPOCHS.get(model.name, args.epochs)
        say(f"{model.name}: training {epochs} epochs …")
        train_s = train(model, x, y, epochs)
        with captured_output():
            res = search(model, x, y, xv, yv, SearchConfig(max_accuracy_drop=args.budget, threads=args.threads,
                                                           target_speedup=1.5 if model.name in EPOCHS else None),
                         log=say)
        say(res.verdict)
        out["models"][model.name] = {"train_seconds": round(train_s, 1), "train_epochs": epochs, "environment": env,
                                     **res.to_dict()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    tmp.replace(args.out)
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
