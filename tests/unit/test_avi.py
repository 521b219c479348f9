"""MJPEG AVI frames cut out of the file (device/avi.py): the same frames, in the same order, as OpenCV decodes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from keras_edge.device.inputs import avi
from keras_edge.device.inputs.images import decode


def _write(path, frames, fourcc="MJPG", fps=24.0):
    h, w = frames[0].shape[:2]
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    if not wr.isOpened():
        pytest.skip(f"this OpenCV cannot write {fourcc}")
    for f in frames:
        wr.write(f)
    wr.release()
    return path


@pytest.fixture(scope="module")
def frames():
    """Real photo content, each frame a different crop (so neighbours differ clearly)."""
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    return [np.ascontiguousarray(photo[8 * k:8 * k + 120, 5 * k:5 * k + 160]) for k in range(30)]


def _capture(path):
    cap, out = cv2.VideoCapture(str(path)), []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def test_packets_are_opencvs_frames_in_order(tmp_path, frames):
    path = _write(tmp_path / "clip.avi", frames)
    info = avi.probe(path)
    assert info is not None and (info.width, info.height) == (160, 120) and info.fps == pytest.approx(24.0)
    packets = avi.open_packets(path)
    got = []
    while True:
        ok, blob = packets.read()
        if not ok:
            break
        got.append(decode(blob, "frame"))
    packets.release()
    ref = _capture(path)
    assert len(got) == len(ref) == len(frames)
    for i, img in enumerate(got):
        dist = [float(np.abs(img.astype(np.int16) - r).mean()) for r in ref]
        assert int(np.argmin(dist)) == i                 # frame i is OpenCV's frame i, not a neighbour
        assert dist[i] < 2.0                             # the same JPEG, decoded by libjpeg instead of FFmpeg


def test_grab_skips_a_frame(tmp_path, frames):
    path = _write(tmp_path / "clip.avi", frames[:5])
    packets = avi.open_packets(path)
    assert packets.grab() and packets.grab()
    ok, blob = packets.read()
    third = decode(blob, "frame")
    assert ok and float(np.abs(third.astype(np.int16) - _capture(path)[2]).mean()) < 2.0
    assert packets.get(5) == pytest.approx(24.0)
    packets.release()


def test_other_codecs_and_files_stay_with_opencv(tmp_path, frames):
    other = _write(tmp_path / "xvid.avi", frames[:3], fourcc="XVID")
    assert avi.probe(other) is None and avi.open_packets(other) is None
    (tmp_path / "fake.avi").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    assert avi.probe(tmp_path / "fake.avi") is None
    (tmp_path / "empty.avi").write_bytes(b"")
    assert avi.probe(tmp_path / "empty.avi") is None


def test_a_truncated_file_yields_its_complete_frames(tmp_path, frames):
    path = _write(tmp_path / "clip.avi", frames[:10])
    blob = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(blob[: len(blob) * 6 // 10])      # the index and the last frames are gone
    packets = avi.open_packets(cut)
    n = 0
    while True:
        ok, b = packets.read()
        if not ok:
            break
        decode(b, "frame")
        n += 1
    packets.release()
    assert 3 <= n < 10
