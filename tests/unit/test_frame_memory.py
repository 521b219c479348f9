"""keep_frame_memory: decoded frames reuse freed heap blocks instead of faulting in fresh pages, and
release_free_memory gives the free ones back. Process-wide allocator settings, so each case runs in a
fresh process; page faults are counted by the kernel (no timing asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

CHILD = r"""
import json, resource, sys, threading
import cv2, numpy as np
from keras_edge.device.engine import runtime
cv2.setNumThreads(1)
on = runtime.keep_frame_memory()
img = np.zeros((1080, 1920, 3), np.uint8)
cv2.putText(img, "keras-edge", (100, 540), cv2.FONT_HERSHEY_SIMPLEX, 8, (255, 200, 50), 20)
data = np.frombuffer(cv2.imencode(".jpg", img)[1].tobytes(), np.uint8)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

def decode_many(n):                      # on a thread, as the run pipeline's workers decode
    for _ in range(n):
        frame = cv2.imdecode(data, cv2.IMREAD_COLOR)
        cv2.resize(frame, (224, 224), interpolation=cv2.INTER_AREA)

def on_thread(n):
    t = threading.Thread(target=decode_many, args=(n,)); t.start(); t.join()

on_thread(3)                             # warm-up: the first frames come from fresh memory either way
a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
on_thread(30)
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a) / 30
held = [cv2.imdecode(data, cv2.IMREAD_COLOR) for _ in range(8)]   # 50 MB of frames, then freed
before = rss(); del held
after_free = rss(); ms = runtime.release_free_memory(); after_release = rss()
print(json.dumps({"on": on, "faults_per_frame": faults, "before": before, "after_free": after_free,
                  "after_release": after_release, "release_ms": ms}))
"""


def child(flag: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True,
                         env={**os.environ, "KERAS_EDGE_FRAME_MEMORY": flag})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_frames_decoded_on_a_thread_reuse_freed_memory_and_free_memory_is_given_back():
    kept, default = child("1"), child("0")
    pages = 1080 * 1920 * 3 / 4096                     # a 1080p BGR frame: ~1,500 pages
    assert kept["on"] and not default["on"]
    assert kept["faults_per_frame"] < 0.1 * pages, kept  # reused: not faulted in again
    # kept frames stay resident once freed (up to 32 MB a block) until released, then go back to the kernel
    frame_mb = pages * 4096 / 2**20
    assert kept["after_free"] - kept["after_release"] > frame_mb, kept
    assert default["release_ms"] == 0.0                # switched off: release does nothing
