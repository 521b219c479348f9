"""Preprocessing a 1920x1080 frame to a 224x224x3 'tf'-normalised input ([-1, 1]), the ways users do it.

From a decoded RGB frame (a camera) and from JPEG bytes (a file): PIL + NumPy, OpenCV (keras-edge's
``preprocess``, and the runner's own ``prepare`` path that fills the int8 model's input through a
lookup table and, for JPEGs, decodes at reduced size when that is exact enough), ``tf.image``
eagerly and inside ``tf.function``; and preprocessing baked into the graph: MobileNetV2 with
Resizing + Rescaling as its first layers, converted to TFLite, timed against the plain model so
the difference is the in-graph preprocessing cost.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from .common import Environment, Stats, environment, frame_1080p, jpeg_bytes, ratio, side_by_side
from .models import BenchModel

SIZE = 224


@dataclass(frozen=True)
class Row:
    path: str           # "frame" (decoded RGB array) or "jpeg" (encoded bytes)
    method: str
    stats: Stats
    vs_pil_numpy: float  # how many times faster than PIL + NumPy on the same path


@dataclass(frozen=True)
class BakedResult:
    plain: Stats                 # set input + invoke, MobileNetV2 fp32 on a 224x224 float input
    baked: Stats                 # set input + invoke, the same model taking the raw 1920x1080 uint8 frame
    extra_ms: float              # baked - plain (medians): what preprocessing costs inside the graph
    plain_bytes: int
    baked_bytes: int


@dataclass(frozen=True)
class PreprocessingResult:
    environment: Environment
    frame: str
    jpeg_bytes: int
    rounds: int
    per_round: int
    rows: list[Row]
    baked: BakedResult | None
    max_abs_diff_vs_opencv: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def pil_numpy(frame: np.ndarray) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(frame).resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(img, np.float32) / 127.5 - 1.0


def pil_numpy_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
    return np.asarray(img, np.float32) / 127.5 - 1.0


def tf_functions():
    """tf.image resize + normalise, from a frame and from JPEG bytes: the eager functions and their graphs."""
    import tensorflow as tf

    def from_frame(frame):
        x = tf.image.resize(tf.convert_to_tensor(frame)[None], (SIZE, SIZE), method="bilinear")
        return x / 127.5 - 1.0

    def from_jpeg(data):
        return from_frame(tf.io.decode_jpeg(data, channels=3))

    graph_frame = tf.function(from_frame, input_signature=[tf.TensorSpec((1080, 1920, 3), tf.uint8)])
    graph_jpeg = tf.function(from_jpeg, input_signature=[tf.TensorSpec((), tf.string)])
    return from_frame, from_jpeg, graph_frame, graph_jpeg


def opencv_functions():
    """keras-edge's OpenCV path: ``preprocess`` (float input) and the runner's ``prepare`` (int8 model input)."""
    import cv2
    from keras_edge.device.contract.bundle import TensorSpec
    from keras_edge.device.inputs.pipeline import plan_input, prepare, reduce_factor
    from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess

    spec = PreprocessSpec.from_preset("tf", SIZE, SIZE)
    # an int8 MobileNetV2's input tensor: uint8 with the scale/zero-point calibration gives [-1, 1]
    tensor = TensorSpec("input", (1, SIZE, SIZE, 3), "uint8", scale=1 / 127.5, zero_point=128)
    plan = plan_input(spec, tensor)

    def frame(bgr):
        return preprocess(bgr, spec)   # OpenCV cameras give BGR; preprocess converts to the model's RGB

    def jpeg(data):
        return preprocess(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), spec)

    def runner_jpeg(data, reduce):
        return prepare(data, "frame.jpg", plan, reduce).tensor

    return frame, jpeg, runner_jpeg, reduce_factor, plan


def baked(model: BenchModel, frame: np.ndarray, rounds: int, per_round: int) -> BakedResult:
    """MobileNetV2 with its preprocessing as the first layers vs the plain model, both fp32 TFLite."""
    import keras
    from ai_edge_litert.interpreter import Interpreter
    from keras_edge.device.engine.runtime import default_threads
    from keras_edge.host.tflite.variants import ConvertInputs
    from keras_edge.host.tflite.variants import convert as convert_variant

    base = keras.models.load_model(model.keras_path)
    inp = keras.Input((1080, 1920, 3), dtype="uint8", name="frame")
    x = keras.layers.Resizing(SIZE, SIZE, interpolation="bilinear")(inp)
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
    graph = keras.Model(inp, base(x))
    blobs = {}
    for name, m, shape in (("plain", base, (SIZE, SIZE, 3)), ("baked", graph, (1080, 1920, 3))):
        blobs[name], _ = convert_variant(m, "fp32", ConvertInputs([np.zeros((1, *shape), np.float32)]))
    fns = {}
    inputs = {"plain": np.random.default_rng(0).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32),
              "baked": frame[None]}
    for name, blob in blobs.items():
        it = Interpreter(model_content=blob, num_threads=default_threads())
        it.allocate_tensors()
        idx, a = it.get_input_details()[0]["index"], inputs[name]

        def call(it=it, idx=idx, a=a):
            it.set_tensor(idx, a)   # the frame has to reach the graph every time: count the copy
            it.invoke()
        fns[name] = call
    s = side_by_side(fns, rounds, per_round)
    return BakedResult(s["plain"], s["baked"], round(s["baked"].median_ms - s["plain"].median_ms, 3),
                       len(blobs["plain"]), len(blobs["baked"]))


def run(mobilenet: BenchModel | None, rounds: int = 8, per_round: int = 10, log=print) -> PreprocessingResult:
    """Every preprocessing path side by side on the 1080p astronaut frame."""
    frame = frame_1080p()
    bgr = np.ascontiguousarray(frame[:, :, ::-1])   # each method gets the frame in its library's own order
    data = jpeg_bytes(frame)
    tf_frame, tf_jpeg, g_frame, g_jpeg = tf_functions()
    cv_frame, cv_jpeg, runner_jpeg, reduce_factor, plan = opencv_functions()
    f = reduce_factor(data, plan.spec)
    frame_fns = {"PIL + NumPy": lambda: pil_numpy(frame), "OpenCV (keras-edge preprocess)": lambda: cv_frame(bgr),
                 "tf.image eager": lambda: tf_frame(frame).numpy(), "tf.image in tf.function": lambda: g_frame(frame).numpy()}
    jpeg_fns = {"PIL + NumPy": lambda: pil_numpy_jpeg(data), "OpenCV (keras-edge preprocess)": lambda: cv_jpeg(data),
                "keras-edge runner prepare, full decode": lambda: runner_jpeg(data, 1),
                f"keras-edge runner prepare, 1/{f} JPEG decode": lambda: runner_jpeg(data, f),
                "tf.image eager": lambda: tf_jpeg(data).numpy(), "tf.image in tf.function": lambda: g_jpeg(data).numpy()}
    log("preprocessing: decoded frame")
    rows = _rows("frame", side_by_side(frame_fns, rounds, per_round))
    log("preprocessing: JPEG bytes")
    rows += _rows("jpeg", side_by_side(jpeg_fns, rounds, per_round))
    ref = cv_frame(bgr)
    diffs = {"PIL + NumPy": float(np.abs(pil_numpy(frame) - ref).max()),
             "tf.image in tf.function": float(np.abs(g_frame(frame).numpy()[0] - ref).max())}
    log("preprocessing: baked into the graph")
    bk = baked(mobilenet, frame, rounds, max(2, per_round // 2)) if mobilenet else None
    notes = ["the frame is scikit-image's astronaut (512x512) upscaled to 1920x1080 (bicubic); JPEG quality 90",
             "every method ends in a NumPy array of the model input (tf results include .numpy())",
             "resizing methods differ (PIL's bilinear filters with a support that grows when downscaling; "
             "OpenCV and tf.image sample 2x2 neighbours), see max_abs_diff_vs_opencv",
             f"the runner path writes the uint8 input of an int8 model through a lookup table; 1/{f} is the "
             "JPEG decode reduction keras-edge can use for this frame (it checks the error first)"]
    return PreprocessingResult(environment(), "astronaut upscaled to 1920x1080", len(data), rounds, per_round,
                               rows, bk, diffs, notes)


def _rows(path: str, stats: dict[str, Stats]) -> list[Row]:
    base = stats["PIL + NumPy"].median_ms
    return [Row(path, name, s, ratio(base, s.median_ms)) for name, s in stats.items()]
