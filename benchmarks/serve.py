"""``keras-edge serve`` against ``keras-edge run`` on the same video, the server's idle and busy RSS, and the HTTP
layer's import time and RSS beside the runner's.

Each round, in alternating order: ``run`` over the video in a fresh process (as fast as it goes: frames/s =
inputs / wall time), and one ``serve --source VIDEO --no-realtime`` process (the video looped as fast as it
goes) measured over a window in three phases: no clients; 20 clients that watch (10 MJPEG viewers, 10 pages
polling /stats.json twice a second); 20 clients posting a frame of the video to /infer in a loop. Frames/s
through serve come from its own /metrics counters (live, and api) over the window, after a warm-up. RSS: the
server with no live source, warmed up and idle; and the server's peak (VmHWM) after the busy phases.

    python -m benchmarks.serve [--out benchmarks/results/serve.json] [--rounds 3] [--seconds 10] [--bundle DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import ROOT, WORK, Environment, environment, write_json

CLIENTS = 20


@dataclass
class ServeResult:
    environment: Environment
    bundle: str
    video: str
    rounds: int
    seconds: float
    run_fps: list[float]
    serve_fps: dict[str, list[float]]            # phase → live frames/s per round
    api_per_s: list[float]                       # the /infer phase: api inferences/s per round
    busy_503: list[int]
    other_answers: list[int]                     # /infer answers other than 200 and 503: the target is none
    median: dict[str, float]
    ratio_to_run: dict[str, float]               # serve phase (live [+ api]) frames/s ÷ run's
    rss_mb: dict[str, float]
    http_layer: dict[str, Any]
    load_average_after: list[float]
    target: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _proc_mb(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_child(bundle: Path, video: Path) -> dict[str, float]:
    """In a fresh process: one untimed pass (page cache, first inference), one timed pass of ``run``."""
    from keras_edge.device.run.runner import RunConfig, open_runner, run

    cfg = RunConfig(target=str(bundle), sources=(str(video),))
    runner = open_runner(cfg)
    run(cfg, lambda r: None, runner)
    s = run(cfg, lambda r: None, runner)
    return {"fps": s.fps, "inputs": s.inputs}


def _counts(url: str) -> tuple[float, float, float]:
    from tests.serving import call, metric

    text = call(url + "metrics").body.decode()
    return (metric(text, 'keras_edge_inferences_total{source="live"}'),
            metric(text, 'keras_edge_inferences_total{source="api"}'), time.monotonic())


def _window(url: str, seconds: float) -> tuple[float, float]:
    live0, api0, t0 = _counts(url)
    time.sleep(seconds)
    live1, api1, t1 = _counts(url)
    return (live1 - live0) / (t1 - t0), (api1 - api0) / (t1 - t0)


def serve_phases(bundle: Path, video: Path, frame: bytes, seconds: float, log) -> dict[str, Any]:
    """One server, three phases: live frames/s alone, with 20 watchers, with 20 /infer posters; its peak RSS."""
    from tests.serving import ServerProcess, call, stream_frames

    s = ServerProcess([bundle, "--source", video, "--no-realtime", "--port", "0"])
    try:
        url = s.url
        time.sleep(3)                                    # warm: the first passes over the video
        alone, _ = _window(url, seconds)
        stop = threading.Event()

        end = time.monotonic() + 1 + seconds + 1           # viewers keep one connection through the window

        def viewer() -> None:
            stream_frames(url + "stream.mjpg", 10**9, end)

        def page() -> None:
            while not stop.is_set():
                call(url + "stats.json")
                stop.wait(0.5)

        def poster(out: list[int]) -> None:
            while not stop.is_set():
                try:
                    r = call(url + "infer", frame)
                except OSError as e:          # counted: the target is no answer but 200 and 503
                    out.append(-1)
                    log(f"  /infer: {e!r}")
                    continue
                out.append(r.status)
                if r.status == 503:           # as a client should: come back after Retry-After
                    stop.wait(float(r.headers.get("retry-after", 1)))

        watchers = [threading.Thread(target=viewer) for _ in range(CLIENTS // 2)] + \
                   [threading.Thread(target=page) for _ in range(CLIENTS - CLIENTS // 2)]
        for t in watchers:
            t.start()
        time.sleep(1)
        watched, _ = _window(url, seconds)
        stop.set()
        for t in watchers:
            t.join()
        stop.clear()
        statuses: list[int] = []
        posters = [threading.Thread(target=poster, args=(statuses,)) for _ in range(CLIENTS)]
        for t in posters:
            t.start()
        time.sleep(1)
        live, api = _window(url, seconds)
        stop.set()
        for t in posters:
            t.join()
        peak = _proc_mb(s.proc.pid, "VmHWM")
        other = sum(c not in (200, 503) for c in statuses)    # target: none (a failed connection counts as -1)
        log(f"  serve: alone {alone:.1f}/s, 20 watching {watched:.1f}/s, 20 posting {live:.1f} live + {api:.1f} api/s "
            f"({statuses.count(503)} x 503), peak RSS {peak:.0f} MB")
        return {"alone": alone, "watched": watched, "posting_live": live, "posting_api": api,
                "busy_503": statuses.count(503), "other": other, "peak_mb": peak}
    finally:
        s.stop()


def idle_rss(bundle: Path) -> float:
    from tests.serving import ServerProcess

    s = ServerProcess([bundle, "--port", "0"])
    try:
        time.sleep(2)
        return _proc_mb(s.proc.pid, "VmRSS")
    finally:
        s.stop()


HTTP_PROBE = r"""
import json, os, sys, time
def rss(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
out = {}
r, t = rss(), time.perf_counter()
import http.server, socketserver
out['http_server'] = {'import_ms': (time.perf_counter() - t) * 1e3, 'rss_mb': rss() - r}
r, t = rss(), time.perf_counter()
from keras_edge.device.run.runner import RunConfig, open_runner
out['runner_import'] = {'import_ms': (time.perf_counter() - t) * 1e3, 'rss_mb': rss() - r}
r, t = rss(), time.perf_counter()
runner = open_runner(RunConfig(target=sys.argv[1]))
import numpy as np
from keras_edge.device.run.types import Item
runner.infer(Item('w', [np.zeros(t.shape, t.dtype) for t in runner.engine.inputs]))
out['runner_loaded'] = {'import_ms': (time.perf_counter() - t) * 1e3, 'rss_mb': rss() - r}
r, t = rss(), time.perf_counter()
import keras_edge.device.serve.server, keras_edge.device.serve.handler
out['serve_modules'] = {'import_ms': (time.perf_counter() - t) * 1e3, 'rss_mb': rss() - r}
out['total_rss_mb'] = rss()
print(json.dumps(out))
"""


def http_layer(bundle: Path, repeats: int = 5) -> dict[str, Any]:
    """In fresh interpreters: the stdlib HTTP server's import time and RSS, then the runner's, then serve's own."""
    runs = [json.loads(subprocess.run([sys.executable, "-c", HTTP_PROBE, str(bundle)], capture_output=True, text=True,
                                      check=True, cwd=ROOT.parent).stdout) for _ in range(repeats)]
    med = {k: {m: round(statistics.median(r[k][m] for r in runs), 2) for m in ("import_ms", "rss_mb")}
           for k in ("http_server", "runner_import", "runner_loaded", "serve_modules")}
    med["total_rss_mb"] = round(statistics.median(r["total_rss_mb"] for r in runs), 1)
    med["repeats"] = repeats
    return med


def inputs(bundle: Path) -> tuple[Path, bytes]:
    """The throughput benchmark's 1080p MJPEG video and one of its frames as a JPEG (for /infer)."""
    from .throughput import inputs as throughput_inputs

    folder, video = throughput_inputs()
    return video, sorted(folder.glob("*.jpg"))[0].read_bytes()


def run(bundle: Path, rounds: int, seconds: float, log=print) -> ServeResult:
    env = environment()
    video, frame = inputs(bundle)
    log("serve: the HTTP layer beside the runner (fresh interpreters)")
    layer = http_layer(bundle)
    log(f"  {layer}")
    run_fps: list[float] = []
    phases: dict[str, list[float]] = {"alone": [], "watched": [], "posting": []}
    api, busy, other, peaks = [], [], [], []
    for r in range(rounds):
        order = ["run", "serve"] if r % 2 == 0 else ["serve", "run"]
        for who in order:
            if who == "run":
                p = subprocess.run([sys.executable, "-m", "benchmarks.serve", "--child-run", str(video), "--bundle",
                                    str(bundle)], capture_output=True, text=True, cwd=ROOT.parent, check=True)
                run_fps.append(json.loads(p.stdout.strip().splitlines()[-1])["fps"])
                log(f"  round {r + 1}: run {run_fps[-1]:.1f}/s")
            else:
                ph = serve_phases(bundle, video, frame, seconds, log)
                phases["alone"].append(ph["alone"])
                phases["watched"].append(ph["watched"])
                phases["posting"].append(ph["posting_live"] + ph["posting_api"])
                api.append(ph["posting_api"])
                busy.append(ph["busy_503"])
                other.append(ph["other"])
                peaks.append(ph["peak_mb"])
    idle = idle_rss(bundle)
    med = {"run": statistics.median(run_fps), **{f"serve_{k}": statistics.median(v) for k, v in phases.items()}}
    ratio = {k: round(v / med["run"], 3) for k, v in med.items() if k != "run"}
    rss = {"idle_mb": round(idle, 1), "busy_peak_mb": round(max(peaks), 1)}
    log(f"serve: run {med['run']:.1f}/s; serve/run {ratio}; RSS {rss}")
    target = {"within_10_percent": {k: v >= 0.9 for k, v in ratio.items()}, "no_other_answers": not any(other)}
    notes = [f"the video: {video.name} (1920x1080 MJPEG, 200 frames, tiled from scikit-image photos), looped by serve",
             "run: a fresh process, one untimed pass, then frames/s of one timed pass",
             f"serve: --no-realtime (the video as fast as the model goes), frames/s from its /metrics counters over "
             f"{seconds:g} s windows after 3 s of warm-up; 'watched': {CLIENTS // 2} MJPEG viewers (one connection each "
             f"through the window) and {CLIENTS - CLIENTS // 2} pages polling /stats.json every 0.5 s; 'posting': {CLIENTS} clients "
             "posting a 1080p JPEG to /infer in a loop (after a 503, waiting its Retry-After), live + api inferences/s",
             "busy_peak_mb: the server's VmHWM after the busy phases; idle_mb: a server without a live source, warmed",
             "http_layer: increments in fresh interpreters, in this order: http.server (+socketserver), then the runner's "
             "import, the runner loaded with one inference, then serve's own modules"]
    return ServeResult(env, str(bundle), str(video), rounds, seconds, [round(x, 2) for x in run_fps],
                       {k: [round(x, 2) for x in v] for k, v in phases.items()}, [round(x, 2) for x in api], busy, other,
                       {k: round(v, 2) for k, v in med.items()}, ratio, rss, layer,
                       [round(x, 2) for x in os.getloadavg()], target, notes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "serve.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--bundle", type=Path, default=WORK / "bundles" / "mobilenetv2",
                    help="the MobileNetV2 bench bundle (made by `make bench` when missing: that imports TensorFlow)")
    ap.add_argument("--child-run", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_run:
        print(json.dumps(run_child(args.bundle, args.child_run)))
        return 0
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    from .models import mobilenet_bundle

    bundle = mobilenet_bundle(args.bundle, log)
    write_json(args.out, run(bundle, args.rounds, args.seconds, log=log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
