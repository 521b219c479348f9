"""``keras-edge run``: a bundle or any ``.tflite`` on images, folders, arrays, video or a camera.

Library first: :func:`run` takes a :class:`RunConfig`, calls ``emit`` with one :class:`Result` per
input as soon as it is ready, and returns a :class:`Summary`. The CLI only renders.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..contract.bundle import Task, TensorSpec
from ..engine.core import Engine, EngineOptions, load
from ..contract.checks import positive_int
from ..contract.errors import ConfigError, DataError
from ..inputs.pipeline import (DecodePolicy, InputPlan, image_dims, jpeg_size, plan_input, prepare, prepare_array,
                               reduce_factor, tolerance)
from ..outputs.postprocess import Postprocessor, file_outputs, infer_postprocess
from ..inputs.pipeline import max_abs_diff
from ..inputs.preprocess import dequantize, quantize
from ..inputs.images import read_bytes
from ..engine.runtime import RELEASE_EVERY_S, default_threads, keep_frame_memory, release_free_memory
from .sources import Context, Folder, Source, decodes, holds_video, jobs, plan_sources
from .types import Feed, Item, Latencies, Prediction, Result, StreamStats, Summary
from ..engine.target import Target, infer_spec, is_bundle, open_target
from ..contract.tasks import PostprocessSpec
from ..outputs.heads import HEADS
from ..outputs.task_options import AUTO, TaskOptions
from .workers import Ordered, plan_threads


@dataclass(frozen=True)
class RunConfig:
    target: str
    sources: tuple[str, ...] = ()
    camera: int | None = None
    variant: str | None = None
    top_k: int = 5
    engine: EngineOptions = EngineOptions()
    save_outputs: str | None = None
    labels: str | None = None
    preprocess: str | None = None          # preset for a bare .tflite (bundles carry their own spec)
    decode: DecodePolicy = DecodePolicy.AUTO
    max_frames: int | None = None           # per video/camera stream
    workers: int | None = None              # decode/preprocess threads (None: chosen with the interpreter's threads)
    realtime: bool = False                  # read videos at their own frame rate, as live streams (late frames dropped)
    # what the outputs mean, for a bare .tflite (bundles carry their postprocess spec; only thresholds override it)
    task_options: TaskOptions = TaskOptions()
    draw: str | None = None                 # folder for annotated images / videos

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode", DecodePolicy(self.decode))
        self._check_task()
        positive_int("top_k", self.top_k, "1 or more classes")
        if self.max_frames is not None:
            positive_int("max_frames", self.max_frames, "1 or more frames, or leave it unset to read whole streams")
        if self.workers is not None:
            positive_int("workers", self.workers, "1 or more worker threads, or leave it unset to fit the cores")
        if self.realtime and self.camera is None and not any(map(holds_video, self.sources)):
            raise ConfigError("realtime", "needs a video file or a camera among the sources (images and arrays "
                              "are not streams)", "give a video file, a folder with videos or a camera")

    def _check_task(self) -> None:
        opts = self.task_options
        if not isinstance(opts, TaskOptions):
            raise ConfigError("task_options", f"is a {type(opts).__name__}", "give a TaskOptions")
        if opts.task == AUTO:
            object.__setattr__(self, "task_options", opts := replace(opts, task=None))
        if opts.describing and is_bundle(self.target):
            raise ConfigError(opts.describing[0], f"cannot change what bundle {Path(self.target).name}'s outputs mean "
                              "(its manifest says)", "leave it out; a bundle takes only the score/iou thresholds "
                              "and max detections")
        if not is_bundle(self.target):
            opts.check_complete()

    @property
    def spec_flags(self) -> list[str]:
        """The fields given that describe the outputs (bundles carry these in their manifest)."""
        return self.task_options.describing

    @property
    def decoding(self) -> bool:
        """Whether any source needs decoding (images, video, a camera) rather than arrays only."""
        return self.camera is not None or any(decodes(s) for s in self.sources)


class Runner:
    """A target loaded on its engine, with the plans that turn inputs into its tensors."""

    def __init__(self, target: Target, engine: Engine, config: RunConfig):
        self.target, self.engine, self.config = target, engine, config
        self.notes: list[str] = list(target.assumptions) + list(engine.notes)
        self.plan = self._image_plan()
        self.post = self._postprocessor()
        self.classify = self._is_classifier()
        self._check_labels()
        self._softmax_noted = False
        self._reduce_ok: bool | None = None if config.decode is DecodePolicy.AUTO else config.decode is DecodePolicy.FAST
        if config.draw:
            if self._reduce_ok:
                self.notes.append("fast (reduced) decoding is not used when results are drawn: images are decoded at full size")
            self._reduce_ok = False   # annotate the image at its full size
        self._probe_lock = threading.Lock()   # workers decode at once: the first large JPEG is probed once
        self._saved = 0
        self._keep = bool(config.draw)        # decoded images stay on their items, to draw results on
        self._keep_width: int | None = None   # ... decoded reduced down to this width at most (None: full size)
        self._infer_lock = threading.Lock()   # one invocation at a time: serve infers from request threads too

    @property
    def context(self) -> dict[str, Any]:
        """Fields every JSON line carries: which model, runtime and backend produced it."""
        return {"target": self.target.name, **self.engine.describe()}

    def _image_plan(self) -> InputPlan | None:
        ins = self.engine.inputs
        if len(ins) != 1 or image_dims(ins[0]) is None:
            return None
        spec = self.target.spec
        if spec is None:
            spec, assumed = infer_spec(ins[0], self.config.preprocess)
            self.notes += assumed
        return plan_input(spec, ins[0])

    def _is_classifier(self) -> bool:
        if self.target.task is not None:
            return self.target.task is Task.CLASSIFICATION and len(self.engine.outputs) == 1
        if self.config.task_options.task is not None or self.config.task_options.detection:
            return self.config.task_options.task == Task.CLASSIFICATION.value and len(self.engine.outputs) == 1
        outs = self.engine.outputs
        return len(outs) == 1 and len(outs[0].shape) == 2 and outs[0].shape[1] > 1

    def _postprocessor(self) -> Postprocessor | None:
        """What turns the outputs into task results: the bundle's spec, the flags' or one inferred (with notes).

        None for classifiers (their top-k is :meth:`_top_k`, unchanged) and for outputs reported raw.
        """
        cfg, outs = self.config, list(self.engine.outputs)
        bundle_dir: Path | None = None
        if self.target.manifest is not None:
            spec = self.target.manifest.postprocessing
            bundle_dir = Path(cfg.target)
            declared = list(self.target.manifest.outputs)
            if declared and spec.outputs:   # roles index the manifest's outputs; the file may order them otherwise
                recorded = self.target.variant.output_order if self.target.variant else ()
                order = file_outputs(declared, outs, recorded)
                spec = replace(spec, outputs={r: order[i] if 0 <= i < len(order) else i for r, i in spec.outputs.items()})
        elif cfg.task_options.task is not None or cfg.task_options.detection:
            spec = self._spec_from_flags(outs)
        else:
            spec, notes = infer_postprocess(outs)
            if spec.task is not Task.CLASSIFICATION:
                self.notes += notes
        overrides = {k: getattr(cfg.task_options, k) for k in ("score_threshold", "iou_threshold", "max_detections")
                     if getattr(cfg.task_options, k) is not None}
        if overrides and spec.task is not Task.DETECTION:
            raise ConfigError(next(iter(overrides)), f"applies to detection, and {self.target.name} does "
                              f"{spec.task}", "leave it out")
        spec = replace(spec, **overrides) if overrides else spec
        if spec.task in (Task.CLASSIFICATION, Task.OTHER):
            return None
        post = Postprocessor(spec, outs, self.plan.spec if self.plan else None, bundle_dir,
                             self.target.labels)
        self.notes += post.notes
        post.notes = self.notes         # notes decided at the first call (output roles) reach the summary
        return post

    def _spec_from_flags(self, outs: list[TensorSpec]) -> PostprocessSpec:
        opts = self.config.task_options
        task = Task.DETECTION if opts.detection else Task(opts.task)
        kw: dict[str, Any] = {}
        if opts.scores:
            kw["scores"] = opts.scores
        if task is Task.DETECTION:
            head = HEADS[opts.head]
            roles, fields, notes = head.roles_for(outs, opts)
            self.notes += notes
            kw.update(fields)
            if opts.anchors is not None:
                kw["anchors"] = str(opts.anchors.resolve())
            if opts.box_units:
                kw["box_units"] = opts.box_units
            return PostprocessSpec(task, roles, head=head.name, objectness=opts.objectness, **kw)
        if task is Task.EMBEDDING and opts.references:
            kw["references"] = str(opts.references.resolve())
        role = {Task.CLASSIFICATION: "scores", Task.SEGMENTATION: "mask", Task.EMBEDDING: "embedding"}.get(task)
        return PostprocessSpec(task, {role: 0} if role else {}, **kw)

    def _check_labels(self) -> None:
        """A labels file of the wrong length would name every class wrongly: refuse it (bundles are checked at convert)."""
        labels, outs = self.target.labels, self.engine.outputs
        if not self.config.labels or not labels or not self.classify:
            return
        classes = int(np.prod(outs[0].shape[1:]))
        if classes > 0 and len(labels) != classes:
            raise ConfigError("labels", f"{self.config.labels} has {len(labels)} name(s) but the model has {classes} classes",
                              "give one class name per line, in the order of the model's outputs")

    # ---- inputs → tensors (called on the worker threads)
    def from_bytes(self, data: bytes, name: str) -> Item:
        plan = self._need_plan()
        f = reduce_factor(data, plan.spec) if self._reduce_ok is not False else 1
        if f > 1 and self._reduce_ok is None:
            with self._probe_lock:
                if self._reduce_ok is None:
                    return self._probe_reduce(data, name, plan, f)
        keep = self._keep
        f = f if self._reduce_ok else 1
        if keep and f > 1:   # an image kept for drawing is decoded at least keep_width wide (without one: full size)
            w = (jpeg_size(data) or (0, 0))[1]
            while f > 1 and (self._keep_width is None or w // f < self._keep_width):
                f //= 2
        p = prepare(data, name, plan, f, keep=keep)
        return Item(name, [p.tensor], decode_ms=p.decode_ms, preprocess_ms=p.preprocess_ms, image_hw=p.image_hw,
                    image=p.image)

    def _probe_reduce(self, data: bytes, name: str, plan: InputPlan, f: int) -> Item:
        full, reduced = prepare(data, name, plan), prepare(data, name, plan, f)
        err = max_abs_diff(full.tensor, reduced.tensor)
        tol = tolerance(plan)
        self._reduce_ok = err <= tol
        gain = (full.decode_ms + full.preprocess_ms) / max(1e-6, reduced.decode_ms + reduced.preprocess_ms)
        verdict = "using it" if self._reduce_ok else "decoding at full size (--decode fast accepts it)"
        self.notes.append(f"reduced JPEG decoding (1/{f}) would be {gain:.1f}x faster but changes the input by up to "
                          f"{err:.4g} (tolerance {tol:g}): {verdict}")
        use = reduced if self._reduce_ok else full
        return Item(name, [use.tensor], decode_ms=use.decode_ms, preprocess_ms=use.preprocess_ms, image_hw=use.image_hw)

    def from_frame(self, frame: np.ndarray, name: str) -> Item:
        t0 = time.perf_counter_ns()
        tensor = prepare_array(frame, self._need_plan())
        return Item(name, [tensor], preprocess_ms=(time.perf_counter_ns() - t0) / 1e6,
                    image_hw=(int(frame.shape[0]), int(frame.shape[1])), image=frame if self._keep else None)

    def _array_keys(self, i: int, t) -> list[str]:
        """The keys that may hold the array of the file's input ``i``: in a bundle, the manifest input it
        takes (its Keras name, ``input_<j>`` in Keras order), then the tensor's own name."""
        v, m = self.target.variant, self.target.manifest
        if v is not None and m is not None and len(m.inputs) == len(self.engine.inputs):
            j = v.manifest_input(i)
            return [m.inputs[j].name, f"input_{j}", t.name]
        return [f"input_{i}", t.name]

    def from_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> list[Item]:
        ins = self.engine.inputs
        cols = []
        for i, t in enumerate(ins):
            keys = self._array_keys(i, t)
            a = next((arrays[k] for k in keys if k in arrays), None)
            if a is None and len(ins) == 1 and len(arrays) == 1:
                a = next(iter(arrays.values()))   # one input, one array: whatever its key
            if a is None:
                raise DataError(f"{name} has no array for input {keys[0]!r}; its keys: {', '.join(sorted(arrays)) or 'none'}",
                                f"save one array per input, keyed by input name or input_0..input_{len(ins) - 1}")
            if tuple(a.shape) == t.shape[1:]:
                a = a[None]
            if tuple(a.shape[1:]) != t.shape[1:]:
                raise DataError(f"{name}: array for input {i} has shape {list(a.shape)}, the model takes "
                                f"{list(t.shape)}", "save arrays shaped like the model's input (batch first)")
            if a.dtype.kind == "f":
                a = quantize(a.astype(np.float32), t.dtype, t.scale, t.zero_point)
            elif a.dtype != np.dtype(t.dtype):
                raise DataError(f"{name}: array for input {i} is {a.dtype}, the model takes {t.dtype}",
                                "give float arrays (model units) or arrays of the input's own dtype")
            cols.append(a)
        n = cols[0].shape[0]
        if any(c.shape[0] != n for c in cols):
            raise DataError(f"{name}: the arrays have different batch sizes", "give one batch size for every input")
        return [Item(f"{name}[{k}]" if n > 1 else name, [np.ascontiguousarray(c[k:k + 1]) for c in cols])
                for k in range(n)]

    def _need_plan(self) -> InputPlan:
        if self.plan is None:
            n = len(self.engine.inputs)
            m = self.target.manifest
            if m is not None and len(m.inputs) == n > 1:   # a bundle knows its inputs' Keras names
                names = ", ".join(t.name for t in m.inputs)
                raise DataError(f"{self.target.name} takes {n} inputs ({names}) and images feed only one",
                                f"give .npz files with one array per input, keyed by input name ({names}) or "
                                f"input_0..input_{n - 1}")
            raise DataError(f"{self.target.name} takes {n} input(s) that images cannot feed "
                            f"({', '.join(str(list(t.shape)) for t in self.engine.inputs)})",
                            f"give .npz files with arrays input_0..input_{n - 1}")
        return self.plan

    def decide(self, data: bytes, name: str) -> Item | None:
        """On the reader, in input order: probe reduced decoding on the first large JPEG (auto mode)."""
        plan = self._need_plan()
        f = reduce_factor(data, plan.spec)
        if f == 1:
            return None
        with self._probe_lock:
            return self._probe_reduce(data, name, plan, f) if self._reduce_ok is None else None

    def keep_images(self, on: bool = True, width: int | None = None) -> None:
        """Keep each decoded image on its item from now on (``serve`` draws results on the live frames while
        someone watches), at full size or, where reduced JPEG decoding is in use, at least ``width`` wide."""
        self._keep, self._keep_width = on, width

    def feed(self) -> Feed:
        return Feed(self.from_bytes, self.from_frame, self.from_arrays,
                    undecided=lambda: self._reduce_ok is None and self.plan is not None, decide=self.decide)

    # ---- tensors → result (called on the consumer's thread, in input order; serve's request threads too)
    def infer(self, item: Item) -> Result:
        if item.error or item.tensors is None:
            return Result(item.name, error=item.error or "no input")
        with self._infer_lock:      # an interpreter runs one invocation at a time
            return self._infer(item)

    def _infer(self, item: Item) -> Result:
        t0 = time.perf_counter_ns()
        outs = self.engine.run(item.tensors)
        ms = (time.perf_counter_ns() - t0) / 1e6
        res = Result(item.name, decode_ms=item.decode_ms, preprocess_ms=item.preprocess_ms, infer_ms=ms)
        if self.classify and outs[0].dtype.kind == "f" and not np.isfinite(outs[0]).all():
            # scores of NaN would print as a class with score nan: not a result (a damaged model gives them). Only
            # here: a detection head's outputs past its count are whatever the buffer held, NaN included
            return Result(item.name, error="the model's outputs are not numbers (NaN or infinity) for this input; "
                                           "the model file may be damaged: run `keras-edge verify` on its bundle")
        if self.classify:
            res.top = self._top_k(outs[0])
            if self.config.save_outputs:  # the raw scores too: --save-outputs promises .npy files for every task
                res.outputs = self._describe_outputs(item.name, outs)
        elif self.post is not None:
            t1 = time.perf_counter_ns()
            res.task = self.post(outs, item.image_hw)
            res.postprocess_ms = (time.perf_counter_ns() - t1) / 1e6
            res.labels = self.target.labels
            if self.config.save_outputs:
                res.outputs = self._describe_outputs(item.name, outs)
        else:
            res.outputs = self._describe_outputs(item.name, outs)
            if self.config.draw:   # a map output is drawn as a colour-mapped overlay (draw.py)
                res.raw = [dequantize(o, s.scale, s.zero_point) for o, s in zip(outs, self.engine.outputs)]
        return res

    def run(self, source: "str | os.PathLike | np.ndarray") -> Result:
        """Run one input: an image file, a decoded BGR uint8 image (H, W, C as OpenCV gives it), or an array
        shaped like the model's input (float in model units, or the input's own integer type)."""
        if isinstance(source, np.ndarray):
            if source.dtype == np.uint8 and self.plan is not None and source.ndim in (2, 3):
                return self.infer(self.from_frame(source, "<array>"))
            return self.infer(self.from_arrays("<array>", {"input_0": source})[0])
        path = Path(source)
        return self.infer(self.from_bytes(read_bytes(path), str(path)))   # a regular file, bounded

    def close(self) -> None:
        self.engine = None  # type: ignore[assignment] - releases the interpreter with its buffers

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _top_k(self, raw: np.ndarray) -> list[Prediction]:
        spec = self.engine.outputs[0]
        scores = dequantize(raw, spec.scale, spec.zero_point).reshape(-1).astype(np.float64)
        tol = max(spec.scale * len(scores), 1e-3)
        if scores.min() < -1e-6 or abs(scores.sum() - 1.0) > max(tol, 0.02):
            e = np.exp(scores - scores.max())
            scores = e / e.sum()
            if not self._softmax_noted:
                self.notes.append("the outputs are not probabilities; scores are their softmax")
                self._softmax_noted = True
        k = min(self.config.top_k, scores.size)
        idx = np.argsort(-scores, kind="stable")[:k]
        labels = self.target.labels
        return [Prediction(int(i), round(float(scores[i]), 6), labels[i] if labels and i < len(labels) else None)
                for i in idx]

    def _describe_outputs(self, name: str, outs: list[np.ndarray]) -> list[dict[str, Any]]:
        desc = []
        for i, (o, spec) in enumerate(zip(outs, self.engine.outputs)):
            v = dequantize(o, spec.scale, spec.zero_point)
            d: dict[str, Any] = {"name": self._output_name(i, spec), "shape": list(o.shape), "dtype": str(o.dtype),
                                 "min": float(v.min()) if v.size else None, "max": float(v.max()) if v.size else None}
            if self.config.save_outputs:
                d["file"] = str(self._save(name, i, v))
            desc.append(d)
        self._saved += 1
        return desc

    def _output_name(self, i: int, spec) -> str:
        """A bundle names the file's output ``i`` after the Keras output it is; a bare file by its tensor."""
        v, m = self.target.variant, self.target.manifest
        if v is not None and m is not None and len(m.outputs) == len(self.engine.outputs) > 1:
            return m.outputs[v.manifest_output(i)].name
        return spec.name

    def _save(self, name: str, i: int, value: np.ndarray) -> Path:
        out = Path(self.config.save_outputs)
        out.mkdir(parents=True, exist_ok=True)
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name.split("#")[0]).stem)[:60] or "input"
        path = out / f"{self._saved:05d}_{stem}.output_{i}.npy"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
        return path


def open_runner(config: RunConfig) -> Runner:
    """Resolve the target, load it on the requested backend, and plan its inputs.

    Without an explicit thread count the interpreter gets the threads :func:`.workers.plan_threads`
    leaves it beside the decode workers that ``config``'s sources need.
    """
    target = open_target(config.target, config.variant, config.labels)
    shapes = config.engine.input_shapes or target.input_shapes
    threads = config.engine.threads
    if threads is None:
        threads = plan_threads(default_threads(), config.decoding, config.workers, live=_live(config)).threads
    opts = EngineOptions(**{**asdict(config.engine), "input_shapes": shapes, "threads": threads})
    return Runner(target, load(target.model, opts), config)


def _live(config: RunConfig, plan: list[Source] | None = None) -> bool:
    """A camera, or ``--realtime`` over a stream or folder (``plan``: the sources, when known)."""
    if config.camera is not None or (plan is not None and any(s.live for s in plan)):
        return True
    return config.realtime and (plan is None or any(s.stream or isinstance(s, Folder) for s in plan))


def run(config: RunConfig, emit: Callable[[Result], None], runner: Runner | None = None,
        watch: Callable[[Item, Result, StreamStats], None] | None = None) -> Summary:
    """Run every source through the model, calling ``emit`` per input in input order; returns the summary.

    Inputs are read, decoded and preprocessed on worker threads (:mod:`.workers`) while this thread
    runs inference, postprocessing and ``emit``. ``watch`` (``serve``) also gets each item, with its image
    when the runner keeps them, and the stream's counters so far.
    """
    plan = plan_sources(config.sources, config.camera)
    runner = runner or open_runner(config)
    if config.decoding:
        keep_frame_memory()   # decoded frames reuse freed heap blocks instead of faulting in fresh pages
    e = runner.engine
    live = _live(config, plan)
    threads = plan_threads(default_threads(), config.decoding, config.workers, config.engine.threads, live)
    if threads.threads != e.threads:   # a runner opened with other threads: fit the workers around them
        threads = plan_threads(default_threads(), config.decoding, config.workers, e.threads, live)
    summary = Summary(target=runner.target.name, runtime=e.runtime.label, backend=str(e.backend), threads=e.threads,
                      workers=threads.workers, helping=threads.helping, cores=threads.cores,
                      pipeline=threads.describe(), live=live)
    stats, stop = StreamStats(), threading.Event()
    items = Ordered(jobs(plan, Context(runner.feed(), stop, stats, config.max_frames, config.realtime)), threads.workers,
                    stats, stop, live=live, helping=threads.helping)
    latencies = Latencies()
    infer_total = post_total = 0.0
    drawer = None
    if config.draw:
        from .draw import Drawer

        drawer = Drawer(Path(config.draw), runner.target.labels)
    t0 = time.perf_counter()
    release_at = t0 + RELEASE_EVERY_S
    with _opencv_threads(1 if threads.workers > 1 or threads.helping else None):
        try:
            for item in items:
                res = runner.infer(item)
                summary.inputs += 1
                summary.failed += 0 if res.ok else 1
                infer_total += res.infer_ms
                post_total += res.postprocess_ms
                if drawer is not None and res.ok:
                    drawer.add(item, res)
                if watch is not None:
                    watch(item, res, stats)
                item.image = None
                emit(res)
                if item.captured_ns is not None:
                    latencies.add((time.perf_counter_ns() - item.captured_ns) / 1e6)
                if time.perf_counter() >= release_at:   # frames kept for reuse: give back what stayed free
                    release_free_memory()
                    release_at = time.perf_counter() + RELEASE_EVERY_S
        finally:
            summary.seconds = time.perf_counter() - t0
            if drawer is not None:
                drawer.close()          # finalises the videos, also on Ctrl-C
                runner.notes += drawer.notes
            summary.frames, summary.dropped = stats.frames, stats.dropped
            ok = summary.inputs - summary.failed
            summary.infer_ms_mean = infer_total / ok if ok else 0.0
            summary.postprocess_ms_mean = post_total / ok if ok else 0.0
            summary.latency_ms_p50, summary.latency_ms_p99 = latencies.percentile(50), latencies.percentile(99)
            summary.notes = runner.notes
    return summary


class _opencv_threads:
    """OpenCV's own thread pool set to ``n`` for a while (None: left alone): workers already fill the cores."""

    def __init__(self, n: int | None):
        self.n, self.before = n, None

    def __enter__(self) -> None:
        if self.n is not None:
            import cv2

            self.before = cv2.getNumThreads()
            cv2.setNumThreads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.before is not None:
            import cv2

            cv2.setNumThreads(self.before)
