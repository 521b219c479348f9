"""What every benchmark family shares: the machine description, side-by-side timing, real photos, JSON output.

Timing: ``time.perf_counter_ns`` around each call, warm-up calls first, and contenders *interleaved*
in rounds (A B C, B C A, …) so that load from other processes on a shared machine falls on all of
them alike. Results are compared as ratios of medians measured in the same run.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
WORK = ROOT.parent / "build" / "bench"   # models, bundles, calibration photos (ignored by git)


# ---------------------------------------------------------------- machine description

@dataclass(frozen=True)
class Environment:
    """The machine and software a result was measured on."""

    date: str
    cpu: str
    cpu_features: list[str]
    cores_logical: int
    cores_usable: int
    governor: str | None
    load_average: list[float]
    os: str
    arch: str
    python: str
    numpy: str
    tensorflow: str | None
    keras: str | None
    litert: str | None
    opencv: str | None
    pillow: str | None


def _dist(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment() -> Environment:
    """Describe this machine now (versions from package metadata: nothing heavy is imported here)."""
    from keras_edge.device.engine.sysinfo import cores, cpuinfo, governor

    cpu, c, u = cpuinfo(), cores(), platform.uname()
    return Environment(
        date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), cpu=cpu["model"],
        cpu_features=cpu["features"], cores_logical=c["logical"], cores_usable=c["usable"], governor=governor(),
        load_average=[round(x, 2) for x in os.getloadavg()], os=f"{u.system} {u.release}", arch=u.machine,
        python=sys.version.split()[0], numpy=np.__version__,
        tensorflow=_dist("tensorflow-cpu") or _dist("tensorflow"), keras=_dist("keras"),
        litert=_dist("ai-edge-litert"), opencv=_dist("opencv-python-headless") or _dist("opencv-python"),
        pillow=_dist("pillow"))


# ---------------------------------------------------------------- timing

@dataclass(frozen=True)
class Stats:
    """Per-call latency of one contender, in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    mean_ms: float
    runs: int                    # timed samples
    calls_per_sample: int = 1    # >1 for sub-millisecond calls: each sample times this many calls

    @classmethod
    def of(cls, ns: list[float], calls_per_sample: int = 1) -> "Stats":
        a = np.asarray(ns, np.float64) / 1e6
        return cls(float(np.median(a)), float(np.percentile(a, 90)), float(a.min()), float(a.mean()), int(a.size),
                   calls_per_sample)


MIN_SAMPLE_NS = 1_000_000   # a timed sample of at least ~1 ms: a 50 µs call alone is mostly timer and scheduler noise


def _calls_per_sample(fn: Callable[[], Any], warmup: int) -> int:
    """Warm ``fn`` up; return how many calls make one sample of about MIN_SAMPLE_NS."""
    best = None
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter_ns()
        fn()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None else min(best, dt)
    return max(1, -(-MIN_SAMPLE_NS // max(1, best)))


def side_by_side(contenders: dict[str, Callable[[], Any]], rounds: int, per_round: int, warmup: int = 3
                 ) -> dict[str, Stats]:
    """Time each callable in ``rounds * per_round`` samples, interleaved round by round, after warm-up calls.

    A sample is one call, or for sub-millisecond callables the mean of enough calls to last ~1 ms.
    """
    names = list(contenders)
    inner = {n: _calls_per_sample(contenders[n], warmup) for n in names}
    times: dict[str, list[float]] = {n: [] for n in names}
    clock = time.perf_counter_ns
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            fn, ts, k = contenders[name], times[name], inner[name]
            for _ in range(per_round):
                t0 = clock()
                for _ in range(k):
                    fn()
                ts.append((clock() - t0) / k)
    return {n: Stats.of(times[n], inner[n]) for n in names}


def ratio(slow: float, fast: float) -> float:
    """How many times faster (or smaller) ``fast`` is than ``slow``."""
    return round(slow / fast, 2) if fast > 0 else float("inf")


# ---------------------------------------------------------------- real images (shipped with scikit-image)

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photos() -> list[np.ndarray]:
    """Real colour photographs from scikit-image, RGB uint8 (nothing downloaded)."""
    from skimage import data

    return [getattr(data, name)() for name in PHOTOS]


def views(img: np.ndarray) -> list[np.ndarray]:
    """Eight views of one photo (whole, flipped, four corner crops, centre crop, flipped centre crop)."""
    h, w = img.shape[:2]
    ch, cw = int(h * 0.75), int(w * 0.75)
    centre = img[(h - ch) // 2:(h + ch) // 2, (w - cw) // 2:(w + cw) // 2]
    return [img, img[:, ::-1], img[:ch, :cw], img[:ch, -cw:], img[-ch:, :cw], img[-ch:, -cw:], centre, centre[:, ::-1]]


def calibration_folder(root: Path) -> Path:
    """A folder of 48 JPEGs (6 photos x 8 views) for calibrating and validating ImageNet-size models."""
    import cv2

    if root.is_dir() and len(list(root.glob("*.jpg"))) == len(PHOTOS) * 8:
        return root
    root.mkdir(parents=True, exist_ok=True)
    for name, img in zip(PHOTOS, photos()):
        for k, v in enumerate(views(img)):
            cv2.imwrite(str(root / f"{name}_{k}.jpg"), np.ascontiguousarray(v[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return root


def frame_1080p() -> np.ndarray:
    """scikit-image's astronaut upscaled to a 1920x1080 RGB frame (bicubic, aspect ignored, as a camera frame)."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut(), (1920, 1080), interpolation=cv2.INTER_CUBIC)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode the frame as JPEG")
    return buf.tobytes()


# ---------------------------------------------------------------- results

def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, float)):
        return round(float(obj), 4)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_json(path: Path, result: Any) -> Path:
    """Write a result dataclass as JSON: to a temporary file beside ``path``, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(to_jsonable(result), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
