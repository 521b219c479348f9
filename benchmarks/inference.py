"""Inference at batch 1: what users run today against a bare interpreter and the keras-edge runner.

Contenders, timed side by side on the same preprocessed photo:
- ``keras predict``: ``model.predict(x, verbose=0)``, what tutorials show;
- ``keras compiled``: ``tf.function(model call, jit_compile=False)`` traced once (fixed input signature);
- ``interpreter <variant>``: a bare LiteRT ``Interpreter.invoke()`` loop, input set once;
- ``runner <variant>``: the board-side library's run path (``Runner.infer``: set input, invoke,
  copy outputs, top-k), for every variant of the bundle; the manifest's default is marked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .common import Environment, Stats, environment, ratio, side_by_side
from .models import BenchModel


@dataclass(frozen=True)
class Row:
    contender: str
    variant: str | None
    stats: Stats
    bytes: int | None = None
    backend: str | None = None
    speedup_vs_predict: float = 0.0
    speedup_vs_compiled: float = 0.0


@dataclass(frozen=True)
class ModelResult:
    model: str
    default_variant: str     # what the converter chose (its own latency measurement)
    default_reason: str
    fastest_variant: str     # the runner's fastest variant, measured side by side here
    threads: int
    rows: list[Row]


@dataclass(frozen=True)
class InferenceResult:
    environment: Environment
    rounds: int
    per_round: int
    models: list[ModelResult]
    notes: list[str] = field(default_factory=list)


def sample_image(model: BenchModel) -> np.ndarray:
    """A real image in OpenCV order: the astronaut for ImageNet models, an eval digit for the digits model."""
    import cv2
    from skimage import data

    if model.input_shape[-1] == 1:
        first = sorted((model.calib.parent / "eval").rglob("*.png"))[0]
        return cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def keras_contenders(keras_path, x: np.ndarray) -> dict:
    """``model.predict`` and a compiled call, both returning a NumPy array as a user would get."""
    import keras
    import tensorflow as tf

    model = keras.models.load_model(keras_path)
    call = tf.function(lambda t: model(t, training=False), jit_compile=False,
                       input_signature=[tf.TensorSpec(x.shape, tf.float32)])   # traced once, never again
    return {"keras predict": lambda: model.predict(x, verbose=0),
            "keras compiled": lambda: call(x).numpy()}


def litert_contenders(model: BenchModel, img: np.ndarray) -> tuple[dict, dict, str, str]:
    """Bare interpreter loops and runner calls for every usable variant of the bundle."""
    from ai_edge_litert.interpreter import Interpreter
    from keras_edge.device.contract.bundle import read_manifest
    from keras_edge.device.inputs.pipeline import prepare_array
    from keras_edge.device.run.runner import RunConfig, open_runner
    from keras_edge.device.engine.runtime import default_threads
    from keras_edge.device.run.types import Item

    manifest = read_manifest(model.bundle)
    fns, meta = {}, {}
    for v in manifest.usable:
        it = Interpreter(model_path=str(model.bundle / v.file), num_threads=default_threads())
        it.allocate_tensors()
        runner = open_runner(RunConfig(target=str(model.bundle), variant=v.name, top_k=5))
        tensor = prepare_array(img, runner.plan)          # the variant's own input dtype and quantisation
        it.set_tensor(it.get_input_details()[0]["index"], tensor)
        item = Item("photo", [tensor])
        fns[f"interpreter {v.name}"] = it.invoke
        fns[f"runner {v.name}"] = lambda runner=runner, item=item: runner.infer(item)
        meta[v.name] = (v.bytes, runner.engine.describe()["backend"])
    return fns, meta, manifest.default, manifest.default_reason


def measure_model(model: BenchModel, rounds: int, per_round: int) -> ModelResult:
    """Every contender for one model, interleaved in one run."""
    from keras_edge.device.contract.bundle import read_manifest
    from keras_edge.device.inputs.preprocess import preprocess
    from keras_edge.device.engine.runtime import default_threads

    img = sample_image(model)
    x = preprocess(img, read_manifest(model.bundle).preprocess)[None]   # float model input, as Keras takes it
    fns = keras_contenders(model.keras_path, x)
    lite, meta, default, reason = litert_contenders(model, img)
    stats = side_by_side({**fns, **lite}, rounds, per_round, warmup=5)
    predict, compiled = stats["keras predict"].median_ms, stats["keras compiled"].median_ms
    rows = []
    for name, s in stats.items():
        variant = name.split(" ", 1)[1] if name.startswith(("interpreter", "runner")) else None
        size, backend = meta.get(variant, (None, "tensorflow"))
        rows.append(Row(name, variant, s, size, backend, ratio(predict, s.median_ms), ratio(compiled, s.median_ms)))
    fastest = min((r for r in rows if r.contender.startswith("runner")), key=lambda r: r.stats.median_ms).variant
    return ModelResult(model.name, default, reason, fastest, default_threads(), rows)


def run(models: list[BenchModel], rounds: int = 8, per_round: int = 5, log=print) -> InferenceResult:
    """Measure every model; one result with the environment block."""
    out = []
    for m in models:
        log(f"inference: {m.name}")
        out.append(measure_model(m, rounds, per_round))
    notes = ["weights=None: the ImageNet models have seeded random weights, so accuracy is meaningless; "
             "latency does not depend on the weights' values",
             "for the random-weight models the converter ran with the loosest accuracy budget it accepts (99.9%) "
             "and no int8-selective search: their softmax over 1000 classes is nearly flat, so top-1 agreement is "
             "noise, and a uint8 output rounds such a softmax to one step (EfficientNetB0's int8 then 'disagrees' "
             "on every image and is excluded); the digits model keeps the default 1% budget and the search",
             "speedups are ratios of medians measured side by side (interleaved rounds) in one process"]
    return InferenceResult(environment(), rounds, per_round, out, notes)
