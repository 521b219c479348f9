"""What convert does per task: the postprocessing spec it writes, and the task metric it judges variants by.

The spec is checked against the Keras model's outputs by the board's own :class:`Postprocessor` before
anything slow happens. For detection and segmentation every variant's outputs (and Keras's) go through that
same Postprocessor with each evaluation image's original size, and are scored with the board's metrics
(:func:`detection_map`, :func:`mean_iou`) against the annotations, and against Keras's own postprocessed
results (fidelity). The task metric's drop is the loss the budget, the default choice and the int8 search
use (``metric_drop`` in a variant's metrics, read by :func:`.choose.loss_of`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from keras_edge.device.contract import bundle as B
from keras_edge.device.contract import ConfigError, DataError, ModelError
from keras_edge.device.inputs import PreprocessSpec
from keras_edge.device.contract import PostprocessSpec, ScoreKind, Task
from keras_edge.device.outputs import HEADS
from keras_edge.device.outputs import TaskOptions

Log = Callable[[str], None]
ANCHORS_FILE = "anchors.npy"
DEFAULT_HEAD = "yolo"                # --task detection without --head
REFERENCES_FILE = "embeddings.npz"   # not reference.npz: that one holds verify's inputs and outputs
EVAL_SCORE_THRESHOLD = 0.001   # mAP is computed over the whole precision-recall curve, as COCO does
METRIC = {Task.DETECTION: "map50_95", Task.SEGMENTATION: "miou"}
METRIC_NAME = {"map50_95": "mAP@0.5:0.95", "miou": "mean IoU"}


def check_options(cfg) -> None:
    """What convert adds to the task options' own checks (run in ConvertConfig.__post_init__)."""
    if not isinstance(cfg.task_options, TaskOptions):
        raise ConfigError("task_options", f"is a {type(cfg.task_options).__name__}", "give a TaskOptions")
    cfg.task_options.check_complete(default_head=DEFAULT_HEAD)
    if cfg.annotations is not None and not Path(cfg.annotations).exists():
        raise ConfigError("annotations", f"{cfg.annotations}: no such file or folder",
                          "give a YOLO labels folder, a COCO .json or a masks folder for the evaluation images")


def is_classifier(outputs: Sequence[B.TensorSpec]) -> bool:
    return len(outputs) == 1 and len(outputs[0].shape) == 2 and outputs[0].shape[-1] > 1


def resolve(cfg, outputs: Sequence[B.TensorSpec], preprocess: PreprocessSpec | None,
            log: Log = lambda s: None) -> PostprocessSpec | None:
    """The postprocessing spec for ``cfg.task_options`` on a model with these outputs; None for an unknown task
    (auto on a model that is not classifier-shaped). Raises ModelError when the outputs do not fit."""
    from keras_edge.device.outputs import Postprocessor

    opts: TaskOptions = cfg.task_options
    task = "detection" if opts.detection else (opts.task or "auto")
    if task == "auto":
        if is_classifier(outputs):
            return PostprocessSpec.classification(int(outputs[0].shape[-1]))
        else:
            shapes = ", ".join(str(tuple(o.shape)) for o in outputs)
            log(f"note: the model's outputs ({shapes}) are not a classifier's; they are reported raw. Pass "
                "--task detection|segmentation|embedding|regression to postprocess and score them")
            return None
    task = Task(task)
    if task is Task.CLASSIFICATION:
        if not is_classifier(outputs):
            raise ModelError(f"the model's outputs do not fit task classification: class scores are (1,C), the model "
                             f"has {', '.join(f'{o.name} {tuple(o.shape)}' for o in outputs)}",
                             "pass the --task the model was trained for")
        return PostprocessSpec.classification(int(outputs[0].shape[-1]))
    if task is Task.DETECTION:
        head = HEADS[opts.head or DEFAULT_HEAD]
        roles = {r: i for i, r in enumerate(head.roles)}
        if len(outputs) < len(roles):
            raise ModelError(f"the model's outputs do not fit task detection: the {head.name} head wants {len(roles)} "
                             f"output(s) ({', '.join(roles)}); the model has {len(outputs)} "
                             f"({', '.join(f'{o.name} {tuple(o.shape)}' for o in outputs)})",
                             "check the model's outputs and --task/--head")
        given = {k: getattr(opts, k) for k in ("scores", "box_units", "score_threshold", "iou_threshold", "max_detections")
                 if getattr(opts, k) is not None}
        spec = PostprocessSpec(Task.DETECTION, roles, head=head.name, objectness=opts.objectness,
                               anchors=ANCHORS_FILE if opts.anchors else None,
                               background=0 if head.needs_anchors else None, **given)
    elif task is Task.SEGMENTATION:
        spec = PostprocessSpec(Task.SEGMENTATION, {"mask": 0}, scores=opts.scores or ScoreKind.PROBABILITIES)
    elif task is Task.EMBEDDING:
        spec = PostprocessSpec(Task.EMBEDDING, {"embedding": 0},
                               references=REFERENCES_FILE if opts.references else None)
    else:
        spec = PostprocessSpec(Task.REGRESSION, {o.name: i for i, o in enumerate(outputs)})
    # the spec names the files as they will be in the bundle; checked here against the user's own files
    check = replace(spec, anchors=str(opts.anchors.resolve()) if opts.anchors else None,
                    references=str(opts.references.resolve()) if opts.references else None)
    post = Postprocessor(check, outputs, preprocess, None)     # raises ModelError when the outputs do not fit
    if task is Task.SEGMENTATION and preprocess is not None:
        _check_mask_shape(outputs[0], preprocess)
    for note in post.notes:
        log(f"note: {note}")
    return replace(spec, num_classes=_num_classes(post, spec, outputs))


def _check_mask_shape(out: B.TensorSpec, preprocess: PreprocessSpec) -> None:
    """A mask covers the input: (1,H,W[,C]) with the input's aspect ratio (the device accepts any (1,H,W))."""
    shape = tuple(out.shape)
    if len(shape) < 3 or shape[1] <= 0 or shape[2] <= 0:
        return
    ratio = (shape[1] / shape[2]) / (preprocess.height / preprocess.width)
    if not 0.9 <= ratio <= 1.1:
        raise ModelError(f"the model's outputs do not fit task segmentation: output {out.name!r} {shape} is not a mask "
                         f"of the {preprocess.height}x{preprocess.width} input (its height:width differs)",
                         "check the model's outputs and --task/--head")


def _num_classes(post, spec: PostprocessSpec, outputs: Sequence[B.TensorSpec]) -> int | None:
    if spec.task is Task.DETECTION:
        return post.head.num_classes()
    if spec.task is Task.SEGMENTATION:
        c = int(outputs[0].shape[-1]) if len(outputs[0].shape) == 4 else 1
        return c if c > 1 else 2
    return None


def _image_sizes(sources: Sequence[str]) -> list[tuple[int, int]]:
    from keras_edge.device.inputs import images

    return [tuple(images.load(s).shape[:2]) for s in sources]   # type: ignore[misc]


@dataclass
class TaskEval:
    """Scores a variant's raw outputs on the evaluation images with the board's Postprocessor and metrics."""

    spec: PostprocessSpec
    post: Any                                   # device Postprocessor at the evaluation score threshold
    sizes: list[tuple[int, int]]
    truths: list | None                         # GroundTruth per image, or class-index masks
    keras_results: list                         # Keras's detections (at the deployed threshold) or class maps
    keras: dict[str, Any]                       # Keras's own task metrics

    @property
    def metric(self) -> str:
        return METRIC[self.spec.task]

    @property
    def num_classes(self) -> int:
        return int(self.spec.num_classes or 1)

    def _results(self, post, outs: list[np.ndarray]) -> tuple[list, float]:
        res, times = [], []
        for i, hw in enumerate(self.sizes):
            t0 = time.perf_counter_ns()
            r = post([o[i:i + 1] for o in outs], hw)
            times.append(time.perf_counter_ns() - t0)
            res.append(r.detections if self.spec.task is Task.DETECTION else r.class_map)
        return res, float(np.median(times)) / 1e6

    def _score(self, results: list, truths: list) -> dict[str, Any]:
        from keras_edge.device.outputs import detection_map, mean_iou

        if self.spec.task is Task.DETECTION:
            m = detection_map(results, truths, self.num_classes)
            return {"map50": round(m["map50"], 6), "map50_95": round(m["map50_95"], 6)}
        m = mean_iou(results, truths, self.num_classes)
        return {"miou": round(m["miou"], 6), "pixel_accuracy": round(m["pixel_accuracy"], 6)}

    def _fidelity(self, results: list) -> float:
        """The task metric of these results scored against Keras's own (1.0: the same boxes or pixels)."""
        from keras_edge.device.outputs import GroundTruth

        if self.spec.task is Task.DETECTION:
            truths = [GroundTruth(np.array([d.box for d in dets]).reshape(-1, 4), np.array([d.class_id for d in dets]))
                      for dets in self.keras_results]
            if not any(len(t.classes) for t in truths):
                return 1.0 if not any(results) else 0.0
            return self._score(results, truths)["map50_95"]
        return self._score(results, self.keras_results)["miou"]

    def metrics(self, outs: list[np.ndarray]) -> dict[str, Any]:
        """Task metrics of one variant's stacked float outputs (one row per evaluation image, in the Keras
        model's output order: ``_Job.io_order`` in core.py)."""
        results, post_ms = self._results(self.post, outs)
        m: dict[str, Any] = {"task_metric": self.metric, "postprocess_ms": round(post_ms, 4)}
        if self.truths is not None:
            m.update(self._score(results, self.truths))
        m["task_fidelity"] = round(self._fidelity(results), 6)
        if self.truths is not None:
            m["metric_drop"] = round(self.keras[self.metric] - m[self.metric], 6)
        else:
            m["metric_drop"] = round(1.0 - m["task_fidelity"], 6)
        return m


def load_truths(spec: PostprocessSpec | None, sources: Sequence[str], annotations: Path | None) -> list | None:
    """The evaluation images' annotations (boxes or masks), read and checked by the board's readers."""
    from keras_edge.device.outputs import load_annotations

    if annotations is None:
        return None
    if spec is None or spec.task not in METRIC:
        what = spec.task if spec is not None else "undeclared"
        raise ConfigError("annotations", f"score detection or segmentation, but the model's task is {what}",
                          "pass --task detection or --task segmentation, or leave --annotations out")
    if not sources:
        raise DataError(f"{spec.task} is evaluated on images (boxes and masks map back to each image's size), "
                        "but the calibration data are arrays", "give folders of images to --calib/--eval")
    paths = [Path(s) for s in sources]
    with tempfile.TemporaryDirectory(prefix="ke-coco-") as tmp:
        path = _coco_subset(Path(annotations), paths, Path(tmp))
        try:
            truths, _names = load_annotations(path, paths, spec.task, spec.num_classes)
        except DataError as e:   # name the user's file, not the cut-down copy
            raise DataError(e.what.replace(str(path), str(annotations)), e.fix) from None
    if spec.task is Task.DETECTION and not any(len(t.classes) for t in truths):
        raise DataError(f"the annotations {annotations} hold no objects for the {len(sources)} evaluation images",
                        "give annotations that label the evaluation images")
    return truths


def _coco_subset(path: Path, images: Sequence[Path], tmp: Path) -> Path:
    """A COCO file cut down to the evaluation images (a held-out part of --calib), for the board's reader, which
    wants every annotated image given. Unreadable or non-COCO files pass through: the reader says what is wrong."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return path
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        names = {p.name for p in images}
        keep = [im for im in coco["images"] if Path(str(im["file_name"])).name in names]
        ids = {im["id"] for im in keep}
        if len(keep) == len(coco["images"]) or not keep:
            return path
        anns = [a for a in coco["annotations"] if a.get("image_id") in ids]
    except (OSError, ValueError, KeyError, TypeError):
        return path
    out = tmp / path.name
    out.write_text(json.dumps({**coco, "images": keep, "annotations": anns}), encoding="utf-8")
    return out


def task_eval(spec: PostprocessSpec | None, outputs: Sequence[B.TensorSpec], preprocess: PreprocessSpec | None,
              sources: Sequence[str], truths: list | None, keras_out: list[np.ndarray],
              anchors: Path | None, log: Log) -> TaskEval | None:
    """The evaluator for detection/segmentation (None for other tasks), with Keras's own metrics computed."""
    from keras_edge.device.outputs import Postprocessor

    if spec is None or spec.task not in METRIC:
        return None
    if preprocess is None or not sources:
        log(f"note: {spec.task} is scored on images (boxes and masks map back to each image's size); the "
            "calibration data are arrays, so variants are compared by their raw outputs only")
        return None
    local = replace(spec, anchors=str(Path(anchors).resolve())) if anchors else spec
    deployed = Postprocessor(local, outputs, preprocess)
    post = Postprocessor(replace(local, score_threshold=min(spec.score_threshold, EVAL_SCORE_THRESHOLD),
                                 max_detections=max(spec.max_detections, 300)), outputs, preprocess)
    ev = TaskEval(spec, post, _image_sizes(sources), truths, [], {})
    ev.keras_results, _ = ev._results(deployed, keras_out)
    keras_results, post_ms = ev._results(post, keras_out)
    ev.keras = {"task_metric": ev.metric, "postprocess_ms": round(post_ms, 4)}
    if truths is not None:
        ev.keras.update(ev._score(keras_results, truths))
        log(f"keras: {METRIC_NAME[ev.metric]} {ev.keras[ev.metric]:.4f}"
            + (f", mAP@0.5 {ev.keras['map50']:.4f}" if spec.task is Task.DETECTION else "")
            + f" on {len(sources)} annotated evaluation images")
    else:
        log(f"note: no --annotations: variants are scored by {METRIC_NAME[ev.metric]} against Keras's own "
            f"{'detections' if spec.task is Task.DETECTION else 'masks'} (fidelity), not against ground truth")
    return ev

