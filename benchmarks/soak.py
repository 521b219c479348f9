"""Soak: 50,000 inferences through ``run`` on a looping source; memory, file descriptors and latency must not drift.

The source is a folder of 20 real-photo JPEGs (640x480) given to :func:`keras_edge.device.run.runner.run` as
many times as it takes (the folder is walked lazily each time round, as a folder of 50,000 would be),
on MobileNetV2 int8 with the runner's own choice of workers and threads. ``emit`` samples this
process's RSS and open file descriptors every 500 results and records each input's service time
(decode + preprocess + inference, as the runner measured them). After a warm-up (the first 2,000):

- RSS growth: RSS at the end minus RSS at the end of the warm-up (target ≤ 2 MB; the largest too);
- file descriptors: the count at the end against the count after the warm-up (target: equal);
- latency drift: median service time of the last 1,000 against the first 1,000 after the warm-up
  (target within 5%; inference alone reported beside it).

The whole curve is kept: the median service and inference time of every block of 1,000, with the
process's CPU time per input and the machine's 1-minute load average over that block. A block whose
wall-clock time moves while its CPU time per input stays put was slowed by the machine (other
processes on the cores), not by the runner doing more work.

    python -m benchmarks.soak [--out benchmarks/results/soak.json] [--inferences 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .common import ROOT, WORK, Environment, environment, photos, views, write_json

SAMPLE_EVERY = 500


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def loop_folder(root: Path = WORK / "soak") -> Path:
    """20 JPEGs, 640x480, cut from scikit-image's photos (made once)."""
    import cv2

    if len(list(root.glob("*.jpg"))) != 20:
        root.mkdir(parents=True, exist_ok=True)
        k = 0
        for img in photos():
            for v in views(img)[:4]:
                if k < 20:
                    cv2.imwrite(str(root / f"{k:02d}.jpg"), cv2.resize(np.ascontiguousarray(v[:, :, ::-1]), (640, 480)),
                                [cv2.IMWRITE_JPEG_QUALITY, 90])
                k += 1
    return root


@dataclass(frozen=True)
class SoakResult:
    environment: Environment
    inferences: int
    warmup: int
    seconds: float
    pipeline: str
    rss_mb_after_warmup: float
    rss_mb_end: float
    rss_growth_mb: float             # target <= 2
    rss_max_growth_mb: float
    fds_after_warmup: int
    fds_end: int
    service_ms_p50_first: float      # the first 1,000 after the warm-up
    service_ms_p50_last: float       # the last 1,000
    drift: float                     # last / first - 1, target within +-0.05
    infer_ms_p50_first: float
    infer_ms_p50_last: float
    infer_drift: float
    failed: int
    load_average_after: list[float]
    met: dict[str, bool]
    rss_samples_mb: list[float] = field(repr=False, default_factory=list)
    block: int = 1_000               # the curve below: one entry per block of this many inputs, from the first
    service_ms_p50_blocks: list[float] = field(default_factory=list)
    infer_ms_p50_blocks: list[float] = field(default_factory=list)
    cpu_ms_per_input_blocks: list[float] = field(default_factory=list)   # this process, all threads
    load_1min_blocks: list[float] = field(default_factory=list)          # the machine, sampled at each block's end
    notes: list[str] = field(default_factory=list)


def soak(bundle: Path, inferences: int = 50_000, warmup: int = 2_000, window: int = 1_000, log=print) -> SoakResult:
    """Run ``inferences`` inputs through ``run`` and measure what drifts."""
    from keras_edge.device.run.runner import RunConfig, open_runner, run

    env = environment()
    folder = loop_folder()
    per = len(list(folder.glob("*.jpg")))
    cfg = RunConfig(target=str(bundle), sources=(str(folder),) * -(-inferences // per), variant="int8",
                    decode="exact", top_k=1)
    runner = open_runner(cfg)
    service = np.zeros(inferences + per, np.float64)   # allocated up front: the soak's own memory stays put
    infer = np.zeros(inferences + per, np.float64)
    rss = np.zeros(inferences // SAMPLE_EVERY + 2, np.float64)
    fds = np.zeros_like(rss)
    blocks = inferences // window + 2
    cpu_at = np.zeros(blocks, np.float64)     # process CPU seconds when each block ended (index 0: the start)
    load_at = np.zeros(blocks, np.float64)
    n = 0

    def emit(r) -> None:
        nonlocal n
        service[n] = r.decode_ms + r.preprocess_ms + r.infer_ms
        infer[n] = r.infer_ms
        n += 1
        if n % window == 0 and n // window < blocks:
            cpu_at[n // window], load_at[n // window] = time.process_time(), os.getloadavg()[0]
        if n % SAMPLE_EVERY == 0:
            rss[n // SAMPLE_EVERY], fds[n // SAMPLE_EVERY] = rss_mb(), open_fds()
            if n % 10_000 == 0:
                log(f"  soak: {n} inferences, RSS {rss[n // SAMPLE_EVERY]:.1f} MB, {int(fds[n // SAMPLE_EVERY])} fds")

    t0 = time.perf_counter()
    cpu_at[0] = time.process_time()
    summary = run(cfg, emit, runner)
    seconds = time.perf_counter() - t0
    n = min(n, inferences)
    w = warmup // SAMPLE_EVERY
    last = n // SAMPLE_EVERY
    growth = rss[last] - rss[w]
    first_s, last_s = service[warmup:warmup + window], service[n - window:n]
    first_i, last_i = infer[warmup:warmup + window], infer[n - window:n]
    p = lambda a: float(np.median(a))  # noqa: E731
    drift, idrift = p(last_s) / p(first_s) - 1, p(last_i) / p(first_i) - 1
    full = n // window
    curve_s = [round(p(service[k * window:(k + 1) * window]), 4) for k in range(full)]
    curve_i = [round(p(infer[k * window:(k + 1) * window]), 4) for k in range(full)]
    curve_cpu = [round(float(cpu_at[k + 1] - cpu_at[k]) * 1e3 / window, 4) for k in range(full)]
    curve_load = [round(float(load_at[k + 1]), 2) for k in range(full)]
    met = {"rss_growth": bool(growth <= 2.0), "fds": int(fds[last]) == int(fds[w]), "drift": bool(abs(drift) <= 0.05)}
    return SoakResult(env, n, warmup, seconds, summary.pipeline, float(rss[w]), float(rss[last]), float(growth),
                      float(rss[w:last + 1].max() - rss[w]), int(fds[w]), int(fds[last]), p(first_s), p(last_s),
                      drift, p(first_i), p(last_i), idrift, summary.failed, [round(x, 2) for x in os.getloadavg()],
                      met, [round(float(x), 2) for x in rss[1:last + 1]], window, curve_s, curve_i, curve_cpu,
                      curve_load,
                      [f"source: {per} JPEGs (640x480) looped {-(-inferences // per)} times as one run's sources",
                       "service time = decode + preprocess + inference of one input, as the runner measured it; "
                       "on a loaded machine it moves with the load (see load averages)"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "soak.json")
    ap.add_argument("--inferences", type=int, default=50_000)
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--window", type=int, default=1_000)
    ap.add_argument("--bundle", type=Path, default=WORK / "bundles" / "mobilenetv2",
                    help="the MobileNetV2 bench bundle (made by `make bench` when missing: that imports TensorFlow)")
    args = ap.parse_args(argv)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    from .models import mobilenet_bundle

    bundle = mobilenet_bundle(args.bundle, log)
    res = soak(bundle, args.inferences, args.warmup, args.window, log=log)
    log(f"soak: RSS growth {res.rss_growth_mb:.2f} MB, fds {res.fds_after_warmup}->{res.fds_end}, drift "
        f"{res.drift:+.1%} (inference {res.infer_drift:+.1%}) over {res.inferences} in {res.seconds:.0f}s; met {res.met}")
    log(f"soak: median service ms per block of {res.block}: " + " ".join(f"{x:.2f}" for x in res.service_ms_p50_blocks))
    log("soak: CPU ms per input per block: " + " ".join(f"{x:.2f}" for x in res.cpu_ms_per_input_blocks))
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
