"""Helpers for the ``keras-edge serve`` tests and benchmark: a real server process, HTTP calls, a digits video.

Not part of the product. The server is started as ``python -m keras_edge.cli serve ... --port 0`` and its URL
read from the line it prints when it is ready; its stderr is kept for failure messages.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

READY = re.compile(r"^serving \S+ on (http://\S+/) ")


def digits_video(path: Path, frames: int = 40, size: int = 480, fps: float = 10.0) -> tuple[Path, list[int]]:
    """scikit-learn's digits, scaled up, as an MJPEG AVI at ``fps``; the digits' labels in frame order."""
    import cv2

    from keras_edge.demo import digits_images

    imgs, labels = digits_images()
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (size, size))
    for i in range(frames):
        w.write(cv2.cvtColor(cv2.resize(imgs[i], (size, size), interpolation=cv2.INTER_NEAREST), cv2.COLOR_GRAY2BGR))
    w.release()
    return path, [int(v) for v in labels[:frames]]


class ServerProcess:
    """``keras-edge serve ARGS`` in a child process; ``url`` once it says it serves."""

    def __init__(self, args: Sequence[Any], env: dict[str, str] | None = None, prefix: Sequence[str] = (),
                 timeout: float = 180.0):
        argv = [*prefix, sys.executable, "-m", "keras_edge.cli", "serve", *map(str, args)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=env)
        self.lines: list[str] = []
        self.url: str | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()
        self._ready.wait(timeout)
        if self.url is None:
            self.stop()
            raise RuntimeError("keras-edge serve did not start:\n" + "\n".join(self.lines[-20:]))

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            m = READY.match(line)
            if m:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None, timeout: float = 30.0) -> Reply:
    """One request; HTTP errors come back as replies, not exceptions."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())


def metric(text: str, name: str, default: float | None = None) -> float:
    """The value of one sample (``name`` with its labels, exactly as written) in Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    if default is not None:
        return default
    raise KeyError(name)


def stream_frames(url: str, count: int, deadline: float) -> list[bytes]:
    """Read up to ``count`` JPEGs from an MJPEG (multipart/x-mixed-replace) stream before ``deadline``."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", u.path + (f"?{u.query}" if u.query else ""))
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"stream answered {r.status}")
    boundary = r.headers["Content-Type"].split("boundary=")[1].encode()
    frames = []
    try:
        while len(frames) < count and time.monotonic() < deadline:
            line = r.fp.readline()
            if not line:
                break
            if line.strip() != b"--" + boundary:
                continue
            length = 0
            while (h := r.fp.readline().strip()):
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            frames.append(r.fp.read(length))
    finally:
        conn.close()
    return frames


def decode_jpeg(data: bytes) -> np.ndarray:
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
