"""Can decoding of one video *file* overlap across cores with OpenCV? The options for issue 15, measured.

On the throughput family's 1080p video (MJPEG: intra-only, every frame a keyframe) and the same 200
frames written as MPEG-4 Part 2 (``mp4v``, OpenCV's writer: a keyframe every 12 frames), each option
against plain serial ``cv2.VideoCapture.read()`` of the same file, in one run:

- *ffmpeg threads*: ``CAP_PROP_N_THREADS`` 1 and 2 at open (frame/slice threads inside FFmpeg), wall and
  CPU ms per frame;
- *seek*: ``CAP_PROP_POS_FRAMES`` to keyframes (found by demuxing in raw mode,
  ``CAP_PROP_LRF_HAS_KEY_FRAME``) then ``read()``: does it land exactly (frame equal to serial decoding)
  and what does one seek cost (OpenCV seeks 16 frames early and decodes forward);
- *segments*: each range of ``--segment`` frames demuxed once (raw packets) and decoded from memory by
  its own capture, on 2 threads: what segment-parallel decoding would cost per frame (OpenCV probes the
  container from the bytes: MJPEG packets form a stream it reads; bare MPEG-4 packets from an .mp4 do not,
  and the figure then says so instead of a speed-up).

    python -m benchmarks.video_decode [--out benchmarks/results/video_decode.json] [--segment 32]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .common import ROOT, environment, photos, write_json
from .throughput import DATA, inputs, write_video


def gop_video() -> Path:
    """The throughput frames as MPEG-4 Part 2 (mp4v; OpenCV's FFmpeg writer puts a keyframe every 12 frames)."""
    path = DATA / "video_1080p_mp4v.mp4"
    if not path.is_file():
        write_video(path, "mp4v", [np.ascontiguousarray(p[:, :, ::-1]) for p in photos()])
    return path


def packets(path: Path) -> tuple[list[bytes], list[int]]:
    """The stream's packets in raw mode (demuxed, not decoded) and the indices of its keyframes."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_FORMAT, -1])
    out, keys = [], []
    while True:
        ok, pkt = cap.read()
        if not ok:
            break
        if cap.get(cv2.CAP_PROP_LRF_HAS_KEY_FRAME):
            keys.append(len(out))
        out.append(pkt.tobytes())
    cap.release()
    return out, keys


def decode_all(cap) -> list[np.ndarray]:
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            return frames
        frames.append(f)


def timed(fn) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def measure(path: Path, segment: int) -> dict[str, Any]:
    import cv2

    serial, wall, cpu = timed(lambda: decode_all(cv2.VideoCapture(str(path))))
    n = len(serial)
    res: dict[str, Any] = {"frames": n, "serial_ms_per_frame": {"wall": wall * 1e3 / n, "cpu": cpu * 1e3 / n}}
    pkts, keys = packets(path)
    res["keyframes"] = len(keys)
    res["gop"] = round(n / max(1, len(keys)), 1)
    for t in (1, 2):
        got, wall, cpu = timed(lambda: decode_all(cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, t])))
        res[f"ffmpeg_threads_{t}_ms_per_frame"] = {"wall": wall * 1e3 / n, "cpu": cpu * 1e3 / n,
                                                   "equal": len(got) == n and all(map(np.array_equal, got, serial))}
    cap = cv2.VideoCapture(str(path))
    targets = [k for k in keys if k > 16][:8] or keys[:8]
    exact, costs = True, []
    for k in targets:
        t0 = time.perf_counter()
        cap.set(cv2.CAP_PROP_POS_FRAMES, k)
        ok, f = cap.read()
        costs.append((time.perf_counter() - t0) * 1e3)
        exact &= bool(ok and np.array_equal(f, serial[k]))
    res["seek_to_keyframe"] = {"exact": exact, "ms_median": float(np.median(costs)),
                               "frames_of_decoding": round(float(np.median(costs)) / res["serial_ms_per_frame"]["wall"], 1)}
    starts: list[int] = []
    for k in keys:                       # keyframe-aligned segments of at least `segment` frames
        if not starts or k - starts[-1] >= segment:
            starts.append(k)
    bounds = list(zip(starts, starts[1:] + [n]))

    def seg(ab: tuple[int, int]) -> list[np.ndarray]:
        a, b = ab
        return decode_all(cv2.VideoCapture(io.BytesIO(b"".join(pkts[a:b])), cv2.CAP_FFMPEG, []))

    def parallel() -> list[np.ndarray]:
        with ThreadPoolExecutor(2) as ex:
            return [f for part in ex.map(seg, bounds) for f in part]

    try:
        got, wall, cpu = timed(parallel)
        res["segments_2_threads_ms_per_frame"] = {
            "segments": len(bounds), "wall": wall * 1e3 / n, "cpu": cpu * 1e3 / n,
            "equal": len(got) == n and all(map(np.array_equal, got, serial)),
            "speedup_vs_serial": round(res["serial_ms_per_frame"]["wall"] / (wall * 1e3 / n), 2)
            if len(got) == n and all(map(np.array_equal, got, serial)) else None}
    except Exception as e:  # an OpenCV without stream input: say so
        res["segments_2_threads_ms_per_frame"] = {"error": str(e).splitlines()[0][:200]}
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "video_decode.json")
    ap.add_argument("--segment", type=int, default=32, help="frames per segment (GOP-aligned for the mp4v file)")
    args = ap.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    _, mjpeg = inputs()
    out = {"environment": environment(), "opencv": cv2.__version__, "segment": args.segment,
           "videos": {"mjpeg (intra-only)": measure(mjpeg, args.segment),
                      "mp4v (keyframe every 12)": measure(gop_video(), args.segment)},
           "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    for name, r in out["videos"].items():
        print(name, {k: v for k, v in r.items()}, file=sys.stderr)
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
