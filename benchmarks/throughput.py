"""Throughput of ``keras-edge run`` (pipelined) against a bare serial loop of the same work and the machine's limit.

On 200 generated 1920x1080 JPEGs and on a 1920x1080 MJPEG video (frames made the same way), MobileNetV2
int8 (the bench bundle), measured side by side in one run, contenders interleaved round by round:

- *pipelined*: :func:`keras_edge.device.run.runner.run` with its own choice of workers and interpreter threads
  (the runner opened once, outside the timing; ``decode=exact``, so no reduced JPEG decoding);
- *serial*: one thread doing the same work per input: read, decode, preprocess (the runner's own
  functions), invoke (LiteRT, all cores), top-k;
- *limit*: usable cores ÷ per-input CPU time of the stages, each stage's CPU time measured alone
  (``process_time`` around it: every thread of this process, so FFmpeg's decoder threads count) with a
  one-thread interpreter and OpenCV on one thread — what the cores could do if never idle.

Targets: pipelined ≥ 1.6x serial on 2 cores and ≥ 85% of the limit. Also: the preprocessing figure
(1080p frame → 224x224x3 int8, the runner against the spec's reference, bit-identical), the peak RSS of
``keras-edge run`` (one image; the 200-JPEG folder), and a realtime pass over the video (processed fps,
dropped frames, capture-to-result latency), and the allocator: the pipelined run in fresh processes with
glibc's default malloc thresholds against the runner's :func:`keep_frame_memory` (page faults, kernel time
and images/s per input). The machine's load average is recorded before and after:
on a shared machine the wall-clock figures mean little when it is high.

    python -m benchmarks.throughput [--out benchmarks/results/throughput.json] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .common import ROOT, WORK, Environment, Stats, environment, frame_1080p, photos, side_by_side, write_json

N_IMAGES, N_FRAMES = 200, 200
DATA = WORK / "throughput"


# ---------------------------------------------------------------- inputs

def scene(i: int, tiles: list[np.ndarray]) -> np.ndarray:
    """A 1920x1080 BGR frame tiled from real photographs at native resolution, shifted per index."""
    out = np.zeros((1080, 1920, 3), np.uint8)
    x = y = row = 0
    k = i
    while y < 1080:
        t = tiles[k % len(tiles)]
        h, w = min(t.shape[0], 1080 - y), min(t.shape[1], 1920 - x)
        out[y:y + h, x:x + w] = t[:h, :w]
        x, row, k = x + w, max(row, h), k + 1
        if x >= 1920:
            x, y, row = 0, y + row, 0
    return np.roll(out, (i * 37) % 1920, axis=1)


def inputs() -> tuple[Path, Path]:
    """The JPEG folder and the MJPEG video (made once, kept under build/bench/throughput)."""
    import cv2

    folder, video = DATA / "jpegs", DATA / "video_1080p.avi"
    tiles = [np.ascontiguousarray(p[:, :, ::-1]) for p in photos()]
    if len(list(folder.glob("*.jpg"))) != N_IMAGES:
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(N_IMAGES):
            cv2.imwrite(str(folder / f"frame_{i:04d}.jpg"), scene(i, tiles), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not video.is_file():
        write_video(video, "MJPG", tiles)
    return folder, video


def write_video(path: Path, fourcc: str, tiles: list[np.ndarray]) -> Path:
    """The N_FRAMES scenes as a 1080p, 30 frames/s video in ``fourcc``, written beside ``path`` then renamed."""
    import cv2

    tmp = path.with_name(".partial" + path.suffix)
    w = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), 30, (1920, 1080))
    for i in range(N_FRAMES):
        w.write(scene(i, tiles))
    w.release()
    tmp.replace(path)
    return path


# ---------------------------------------------------------------- contenders

def serial_loop(source: Path, model: Path, plan, threads: int) -> Callable[[], int]:
    """A bare loop: one thread, one input after another (read, decode, preprocess, invoke, top-k)."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_edge.device.inputs.images import decode, read_bytes
    from keras_edge.device.inputs.pipeline import prepare_array

    it = Interpreter(model_path=str(model), num_threads=threads)
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def infer(tensor: np.ndarray) -> None:
        it.set_tensor(i_idx, tensor)
        it.invoke()
        np.argsort(-it.get_tensor(o_idx).reshape(-1))[:5]

    def images() -> int:
        files = sorted(source.glob("*.jpg"))
        for f in files:
            infer(prepare_array(decode(read_bytes(f), str(f)), plan))
        return len(files)

    def video() -> int:
        cap, n = _video(source), 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            infer(prepare_array(_frame(frame), plan))
            n += 1
        cap.release()
        return n

    return video if source.suffix == ".avi" else images


def _video(source: Path):
    """The video read as the runner reads it: an MJPEG AVI's JPEG frames (decoded by :func:`_frame`), else OpenCV."""
    import cv2

    from keras_edge.device.inputs.avi import open_packets

    return open_packets(source) or cv2.VideoCapture(str(source))


def _frame(frame):
    from keras_edge.device.inputs.images import decode

    return decode(frame, "frame") if isinstance(frame, bytes) else frame


def pipelined(source: Path, bundle: Path) -> tuple[Callable[[], int], Any]:
    """The runner's ``run`` on the whole source (opened once here, as the CLI does before it runs)."""
    from keras_edge.device.run.runner import RunConfig, open_runner, run

    cfg = RunConfig(target=str(bundle), sources=(str(source),), variant="int8", decode="exact", top_k=5)
    runner = open_runner(cfg)
    last: dict[str, Any] = {}

    def go() -> int:
        s = run(cfg, lambda r: None, runner)
        last["summary"] = s
        return s.inputs

    return go, last


def stage_cpu(source: Path, model: Path, plan) -> dict[str, float]:
    """Per-input CPU ms of each stage, measured alone: interpreter on one thread, OpenCV on one thread."""
    import cv2
    from ai_edge_litert.interpreter import Interpreter

    from keras_edge.device.inputs.images import decode, read_bytes
    from keras_edge.device.inputs.pipeline import prepare_array

    it = Interpreter(model_path=str(model), num_threads=1)
    it.allocate_tensors()
    i_idx, o_idx = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    cpu = time.process_time_ns
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    totals = {"decode": 0, "preprocess": 0, "infer": 0}
    n = 0
    try:
        frames: Any
        if source.suffix == ".avi":
            cap = _video(source)

            def frames():
                while True:
                    ok, f = cap.read()
                    if not ok:
                        return
                    yield _frame(f)
        else:
            files = sorted(source.glob("*.jpg"))

            def frames():
                for f in files:
                    yield decode(read_bytes(f), str(f))
        gen = frames()
        while True:
            t0 = cpu()
            img = next(gen, None)
            t1 = cpu()
            if img is None:
                break
            tensor = prepare_array(img, plan)
            t2 = cpu()
            it.set_tensor(i_idx, tensor)
            it.invoke()
            np.argsort(-it.get_tensor(o_idx).reshape(-1))[:5]
            t3 = cpu()
            totals["decode"] += t1 - t0
            totals["preprocess"] += t2 - t1
            totals["infer"] += t3 - t2
            n += 1
    finally:
        cv2.setNumThreads(before)
    return {k: v / n / 1e6 for k, v in totals.items()} | {"inputs": n}


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class SourceResult:
    source: str
    inputs: int
    serial_per_s: list[float]
    pipelined_per_s: list[float]
    serial_median_per_s: float
    pipelined_median_per_s: float
    stage_cpu_ms: dict[str, float]
    limit_per_s: float
    speedup_vs_serial: float        # target >= 1.6 on 2 cores
    fraction_of_limit: float        # target >= 0.85
    pipeline: str                   # what run() chose (workers, threads, why)
    serial_threads: int
    # CPU time of all the runner's threads / (wall time x cores): near 1.0 the cores are saturated, and a gap to
    # the limit is stages costing more CPU when they run at once (measured alone for the limit), not idle cores
    pipelined_cpu_busy: float = 0.0


@dataclass(frozen=True)
class PeakRss:
    one_image_mb: list[float]       # `keras-edge run bundle astronaut.jpg` (the cold-start measurement), target <= 80
    folder_mb: float                # the 200-JPEG folder through the pipeline
    median_one_image_mb: float


@dataclass(frozen=True)
class ThroughputResult:
    environment: Environment
    cores: int
    rounds: int
    sources: list[SourceResult]
    preprocessing: dict[str, Any]
    peak_rss: PeakRss | None
    realtime_video: dict[str, Any]
    load_average_after: list[float]
    targets: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # the pipelined run in fresh processes, glibc's default malloc thresholds against keep_frame_memory
    allocator: dict[str, Any] = field(default_factory=dict)


def preprocessing_figure(plan, spec, rounds: int) -> dict[str, Any]:
    """1080p BGR frame → 224x224x3 int8 input: the runner's path against the spec's reference, bit for bit."""
    from keras_edge.device.inputs.pipeline import prepare_array
    from keras_edge.device.inputs.preprocess import preprocess, quantize

    frame = np.ascontiguousarray(frame_1080p()[:, :, ::-1])
    t = plan.tensor

    def reference():
        return quantize(preprocess(frame, spec), t.dtype, t.scale, t.zero_point)[None]

    s: dict[str, Stats] = side_by_side({"runner (prepare_array)": lambda: prepare_array(frame, plan),
                                       "reference (preprocess + quantize)": reference}, rounds * 4, 10)
    runner, ref = s["runner (prepare_array)"], s["reference (preprocess + quantize)"]
    return {"runner": runner, "reference": ref, "runner_median_ms": runner.median_ms, "target_ms": 0.5,
            "bit_identical": bool(np.array_equal(prepare_array(frame, plan), reference())),
            "tensor": f"{list(t.shape)} {t.dtype} (scale {t.scale:.6g}, zero point {t.zero_point})"}


def peak_rss(bundle: Path, folder: Path, repeats: int = 3) -> PeakRss:
    """Peak RSS of `keras-edge run` in fresh processes (benchmarks/child.py: the child's own ru_maxrss)."""
    from .coldstart import launch, sample_image
    from .models import BenchModel

    image = sample_image(BenchModel("mobilenetv2", bundle, bundle, "tf", (224, 224, 3), bundle))
    base = [sys.executable, "-m", "keras_edge.cli", "run", str(bundle)]
    tail = ["--json", "--top-k", "1", "--variant", "int8"]
    one = [launch(base + [str(image)] + tail)["peak_rss_mb"] for _ in range(repeats)]
    folder_mb = launch(base + [str(folder)] + tail + ["--decode", "exact"])["peak_rss_mb"]
    return PeakRss(one, folder_mb, statistics.median(one))


def realtime(video: Path, bundle: Path) -> dict[str, Any]:
    """The video read at its own 30 frames/s, as a camera: processed fps, dropped frames, latency."""
    from keras_edge.device.run.runner import RunConfig, run

    s = run(RunConfig(target=str(bundle), sources=(str(video),), variant="int8", realtime=True), lambda r: None)
    return {"frames": s.frames, "processed": s.inputs, "dropped": s.dropped, "processed_fps": round(s.fps, 2),
            "latency_ms_p50": s.latency_ms_p50, "latency_ms_p99": s.latency_ms_p99, "pipeline": s.pipeline}


def child_pipeline(source: Path, bundle: Path) -> dict[str, float]:
    """In a fresh process: one warm-up and one timed pipelined run; images/s, page faults and CPU per input."""
    import resource

    from keras_edge.device.engine.runtime import keep_frame_memory

    go, _ = pipelined(source, bundle)
    go()
    a, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    n = go()
    wall, b = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)

    return {"per_s": n / wall, "page_faults_per_input": (b.ru_minflt - a.ru_minflt) / n,
            "sys_ms_per_input": (b.ru_stime - a.ru_stime) / n * 1e3,
            "user_ms_per_input": (b.ru_utime - a.ru_utime) / n * 1e3, "frame_memory": keep_frame_memory()}


def allocator_ab(bundle: Path, sources: list[Path], rounds: int, log=print) -> dict[str, Any]:
    """The pipelined run with glibc's default allocator thresholds against keep_frame_memory, side by side.

    mallopt cannot be undone within a process, so each run is a fresh process (``--child``), with
    ``KERAS_EDGE_FRAME_MEMORY=0`` for the defaults; the two alternate who goes first.
    """
    out: dict[str, Any] = {}
    for source in sources:
        runs: dict[str, list[dict[str, float]]] = {"glibc_defaults": [], "frame_memory": []}
        for r in range(rounds):
            order = [("glibc_defaults", "0"), ("frame_memory", "1")]
            for name, flag in (order if r % 2 == 0 else order[::-1]):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.throughput", "--child", str(source),
                                       "--bundle", str(bundle)], capture_output=True, text=True, cwd=ROOT.parent,
                                      env={**os.environ, "KERAS_EDGE_FRAME_MEMORY": flag}, check=True)
                runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        med = {name: {k: round(statistics.median(x[k] for x in rs), 3) for k in rs[0] if k != "frame_memory"}
               | {"in_effect": all(x["frame_memory"] for x in rs)} for name, rs in runs.items()}
        med["speedup"] = round(med["frame_memory"]["per_s"] / med["glibc_defaults"]["per_s"], 2)
        out[source.name] = med
        log(f"  {source.name}: glibc defaults {med['glibc_defaults']}, frame memory {med['frame_memory']}, "
            f"{med['speedup']}x")
    return out


def run(bundle: Path, rounds: int = 3, rss: bool = True, log=print) -> ThroughputResult:
    from keras_edge.device.engine.runtime import default_threads, keep_frame_memory
    from keras_edge.device.engine.target import open_target

    # the allocator setting `run` makes for decoding, made before anything runs: the serial loop and the
    # stage timing reuse freed frame memory too, so the comparison is of the pipeline alone
    frame_memory = keep_frame_memory()
    env = environment()
    cores = default_threads()
    folder, video = inputs()
    target = open_target(str(bundle), "int8", None)
    from keras_edge.device.inputs.pipeline import plan_input
    from keras_edge.device.engine.core import load

    eng = load(target.model)
    plan = plan_input(target.spec, eng.inputs[0])
    del eng
    results = []
    for source in (folder, video):
        log(f"throughput: {source.name}")
        serial = serial_loop(source, target.model, plan, cores)
        pipe, last = pipelined(source, bundle)
        serial(), pipe()  # warm-up: page cache, interpreter, first-inference costs
        per_s: dict[str, list[float]] = {"serial": [], "pipelined": []}
        stage_rounds: list[dict[str, float]] = []
        busy: list[float] = []
        for r in range(rounds):
            order = [("serial", serial), ("pipelined", pipe)]
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                t0, c0 = time.perf_counter(), time.process_time()
                n = fn()
                wall = time.perf_counter() - t0
                per_s[name].append(n / wall)
                if name == "pipelined":   # how busy the cores were: CPU seconds of every thread / (wall x cores)
                    busy.append((time.process_time() - c0) / (wall * cores))
            # the limit's stage costs are measured in every round too, so a slow or fast spell of this (virtual)
            # machine moves the limit and the runs it is compared with alike; the median of the rounds is used
            stage_rounds.append(stage_cpu(source, target.model, plan))
            log(f"  round {r + 1}/{rounds}: serial {per_s['serial'][-1]:.1f}/s, pipelined {per_s['pipelined'][-1]:.1f}/s, "
                f"stage CPU ms {sum(v for k, v in stage_rounds[-1].items() if k != 'inputs'):.2f}")
        stages = {k: statistics.median(st[k] for st in stage_rounds) for k in stage_rounds[0]}
        per_input = stages["decode"] + stages["preprocess"] + stages["infer"]
        limit = cores / (per_input / 1e3)
        sm, pm = statistics.median(per_s["serial"]), statistics.median(per_s["pipelined"])
        results.append(SourceResult(source.name, int(stages["inputs"]), per_s["serial"], per_s["pipelined"], sm, pm,
                                    {k: round(v, 3) for k, v in stages.items() if k != "inputs"}, round(limit, 1),
                                    round(pm / sm, 2), round(pm / limit, 3), last["summary"].pipeline, cores,
                                    round(statistics.median(busy), 3)))
        log(f"  serial {sm:.1f}/s, pipelined {pm:.1f}/s ({pm / sm:.2f}x), limit {limit:.1f}/s ({pm / limit:.0%}), "
            f"cores {statistics.median(busy):.0%} busy; "
            f"stage CPU ms {stages}")
    log("throughput: allocator, side by side in fresh processes")
    alloc = allocator_ab(bundle, [folder, video], rounds, log)
    log("throughput: preprocessing figure")
    pre = preprocessing_figure(plan, target.spec, rounds)
    log(f"  runner {pre['runner_median_ms']:.3f} ms, reference {pre['reference'].median_ms:.3f} ms, "
        f"bit-identical {pre['bit_identical']}")
    log("throughput: realtime video")
    rt = realtime(video, bundle)
    log(f"  {rt}")
    rss_res = None
    if rss:
        log("throughput: peak RSS")
        rss_res = peak_rss(bundle, folder)
        log(f"  one image {rss_res.one_image_mb} MB, folder {rss_res.folder_mb:.1f} MB")
    targets = {"speedup_vs_serial_min": 1.6, "fraction_of_limit_min": 0.85, "preprocess_ms_max": 0.5,
               "peak_rss_mb_max": 80,
               "met": {r.source: {"speedup": r.speedup_vs_serial >= 1.6, "limit": r.fraction_of_limit >= 0.85}
                       for r in results} | {"preprocess": pre["runner_median_ms"] <= 0.5 and pre["bit_identical"],
                                            "peak_rss": bool(rss_res and rss_res.median_one_image_mb <= 80)}}
    notes = [f"{N_IMAGES} JPEGs (quality 90) and a {N_FRAMES}-frame MJPEG video, 1920x1080, tiled from scikit-image "
             "photos at native resolution (real detail), shifted per frame",
             "the video is an MJPEG AVI: intra-only, every frame a keyframe (no GOP); the runner cuts its JPEG frames "
             "out of the file on the reader and decodes them on the workers (device/avi.py); the serial loop and the "
             "stage timing decode the same frames the same way (libjpeg-turbo via cv2.imdecode, within 1 level "
             "of FFmpeg's decode on average). Other codecs (H.264, MPEG-4 with a GOP) are decoded in order on the "
             "reader by OpenCV, which no option made faster on 2 cores (benchmarks/video_decode.py)",
             "images/s are medians over rounds; serial and pipelined alternate who goes first",
             f"glibc keeps freed frame-sized blocks for reuse (device/runtime.py keep_frame_memory, "
             f"{'in effect' if frame_memory else 'NOT in effect: no mallopt here'}) in every contender: without it "
             "each decoded 1080p frame faulted in 1,000-1,800 fresh pages, 2-4 ms of kernel time per input",
             "limit = usable cores / (decode + preprocess + infer CPU ms per input), each stage alone on one thread, "
             "measured in every round beside the throughput runs (median of the rounds)",
             "peak RSS counts mapped library pages, which depend on the page cache: compare figures from one run",
             "the load average before (environment) and after: above the core count, wall-clock figures are not "
             "representative"]
    return ThroughputResult(env, cores, rounds, results, pre, rss_res, rt,
                            [round(x, 2) for x in os.getloadavg()], targets, notes, alloc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "throughput.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument("--bundle", type=Path, default=WORK / "bundles" / "mobilenetv2",
                    help="the MobileNetV2 bench bundle (made by `make bench` when missing: that imports TensorFlow)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)   # allocator_ab's fresh process: one source
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child_pipeline(args.child, args.bundle)))
        return 0
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    from .models import mobilenet_bundle

    bundle = mobilenet_bundle(args.bundle, log)
    res = run(bundle, args.rounds, not args.no_rss, log=log)
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
