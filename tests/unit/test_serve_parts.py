"""``serve``'s pure parts: header sizes before decoding, bounded arrays, the config's safety rules, metrics text,
and the broadcaster (one encode per frame, viewers that never read do not hold up the producer)."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest

from keras_edge.device.contract.errors import ConfigError, DataError
from keras_edge.device.run.types import Prediction, Result
from keras_edge.device.serve.limits import Limits, TooLarge, Unsupported, check_image, image_size, load_arrays
from keras_edge.device.serve.metrics import Histogram, ServeStats
from keras_edge.device.serve.server import ServeConfig
from keras_edge.device.serve.stream import Broadcaster


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tiff"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_image_size_comes_from_the_header(ext, channels):
    import cv2

    if ext == ".jpg" and channels == 4:
        pytest.skip("JPEG has no alpha")
    img = np.random.default_rng(0).integers(0, 256, (37, 53, channels), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    data = buf.tobytes()
    assert image_size(data) == (37, 53)
    assert check_image(data, Limits()) == (37, 53)
    with pytest.raises(TooLarge, match="53x37"):
        check_image(data, Limits(max_pixels=37 * 53 - 1))


def test_a_lossless_webp_and_a_large_tiff_header():
    import cv2

    img = np.zeros((300, 1000, 3), np.uint8)
    ok, buf = cv2.imencode(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, 101])   # above 100: lossless (VP8L)
    assert ok and buf.tobytes()[12:16] == b"VP8L" and image_size(buf.tobytes()) == (300, 1000)
    ok, buf = cv2.imencode(".tiff", np.zeros((70000, 1, 1), np.uint8))       # a LONG height
    assert image_size(buf.tobytes()) == (70000, 1)


def test_unknown_formats_are_not_decoded():
    for data in (b"hello", b"GIF89a" + b"\0" * 20, b"P5\n100 100\n255\n" + b"\0" * 100, b""):
        with pytest.raises(Unsupported, match="not a PNG, JPEG, BMP, WebP or TIFF"):
            check_image(data, Limits())


def test_arrays_are_loaded_without_pickle_and_within_bounds():
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(2, 3))
    assert load_arrays(buf.getvalue(), Limits())["input_0"].tolist() == [[0, 1, 2], [3, 4, 5]]
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.zeros((64, 64), np.float32), b=np.ones(3))
    arrays = load_arrays(buf.getvalue(), Limits())
    assert sorted(arrays) == ["a", "b"] and arrays["a"].shape == (64, 64)
    with pytest.raises(TooLarge, match="MiB of arrays"):
        load_arrays(buf.getvalue(), Limits(max_array_bytes=1000))
    buf = io.BytesIO()
    np.save(buf, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="no pickled objects"):
        load_arrays(buf.getvalue(), Limits())


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_loopback_needs_no_token(host):
    assert ServeConfig("b", host=host).loopback


def test_other_addresses_need_a_token_or_insecure():
    with pytest.raises(ConfigError, match="^host is 0.0.0.0, which other machines can reach, and no token is set") as e:
        ServeConfig("b", host="0.0.0.0")
    assert e.value.field == "host"
    assert not ServeConfig("b", host="0.0.0.0", insecure=True).loopback
    assert ServeConfig("b", host="192.168.1.20", token="x" * 16).token == "x" * 16
    with pytest.raises(ConfigError, match="token is 5 characters") as e:
        ServeConfig("b", host="0.0.0.0", token="short")
    assert e.value.field == "token"
    with pytest.raises(ConfigError, match="characters a URL or header cannot carry"):
        ServeConfig("b", token="a" * 16 + " b")
    with pytest.raises(ConfigError, match="not an IP address"):
        ServeConfig("b", host="board.local")
    with pytest.raises(ConfigError, match="port is 70000"):
        ServeConfig("b", port=70000)
    with pytest.raises(ConfigError, match="camera and a source are both given"):
        ServeConfig("b", source="v.mp4", camera=0)


def test_histogram_is_cumulative_with_sum_and_count():
    h = Histogram((0.01, 0.1))
    for s in (0.005, 0.05, 0.05, 3.0):
        h.observe(s)
    assert h.lines("x", 'source="api"') == ['x_bucket{source="api",le="0.01"} 1', 'x_bucket{source="api",le="0.1"} 3',
                                             'x_bucket{source="api",le="+Inf"} 4', 'x_sum{source="api"} 3.105000',
                                             'x_count{source="api"} 4']


def test_prometheus_text_escapes_labels_and_counts_each_source():
    st = ServeStats()
    st.info = {"target": 'a"b\\c\nd', "threads": 2}
    st.result("live", True, 2.0, latency_ms=30.0, frames=5, dropped=1)
    st.result("api", False, 0.0)
    st.reject("busy")
    text = st.prometheus()
    assert 'keras_edge_info{target="a\\"b\\\\c\\nd",threads="2"} 1' in text
    assert 'keras_edge_inferences_total{source="live"} 1' in text and 'keras_edge_errors_total{source="api"} 1' in text
    assert "keras_edge_dropped_frames_total 1" in text and 'keras_edge_rejected_total{reason="busy"} 1' in text
    assert 'keras_edge_latency_seconds_bucket{le="0.05"} 1' in text
    snap = st.snapshot()
    assert (snap["frames"], snap["dropped"], snap["latency_ms_p50"]) == (5, 1, 30.0)
    st.new_pass()    # a looping source starts over: its counters restart, the server's carry on
    st.result("live", True, 2.0, frames=2, dropped=0)
    assert (st.snapshot()["frames"], st.snapshot()["dropped"], st.snapshot()["loops"]) == (7, 1, 1)


def _frame(value: int) -> np.ndarray:
    return np.full((120, 160, 3), value, np.uint8)


def test_broadcaster_encodes_only_for_viewers_and_once_per_frame():
    import cv2

    b = Broadcaster(labels=("zero", "one"), max_fps=100)
    result = Result("f", top=[Prediction(1, 0.9, "one")])
    try:
        for v in range(50):
            b.offer(_frame(v), result)          # nobody watches: nothing is encoded
        assert b.encoded == 0
        with b.watching():
            seq, jpeg = b.next(-1, timeout=10)  # the newest frame, drawn and encoded once
            assert seq == 1 and b.encoded == 1
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == (120, 160, 3)
            assert abs(int(np.median(img[60:, :])) - 49) <= 2          # the last frame offered
            assert img[:12, :40].max() > 200                           # the label drawn on it
            assert b.next(seq, timeout=0.2) == (1, None)               # no new frame, nothing new
            b.offer(_frame(200), result)
            seq2, jpeg2 = b.next(seq, timeout=10)
            assert seq2 == 2 and jpeg2 != jpeg
    finally:
        b.close()


def test_a_viewer_that_never_reads_does_not_hold_up_offers():
    b = Broadcaster()
    result = Result("f", top=[Prediction(0, 1.0)])
    done = threading.Event()
    try:
        with b.watching():          # a viewer that never calls next()
            def produce() -> None:
                for v in range(300):
                    b.offer(_frame(v % 256), result)
                done.set()
            threading.Thread(target=produce, daemon=True).start()
            assert done.wait(30)
            seq, jpeg = b.next(0, timeout=10)
            assert jpeg is not None and 1 <= b.encoded <= 300
    finally:
        b.close()


def test_broadcaster_scales_wide_frames_down_and_keeps_the_label():
    import cv2

    b = Broadcaster(width=320)
    try:
        with b.watching():
            b.offer(np.zeros((1080, 1920, 3), np.uint8), Result("f", top=[Prediction(7, 0.5, "seven")]))
            _, jpeg = b.next(0, timeout=10)
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (180, 320, 3) and img[:20, :60].max() > 150
    finally:
        b.close()


def test_annotate_maps_boxes_and_masks_onto_a_reduced_image():
    from keras_edge.device.contract.tasks import Task
    from keras_edge.device.outputs.postprocess import Detection, TaskResult
    from keras_edge.device.run.draw import annotate

    det = Result("f", task=TaskResult(Task.DETECTION, detections=[Detection((400.0, 200.0, 800.0, 600.0), 0.9, 2)]))
    full = annotate(np.zeros((1000, 1000, 3), np.uint8), det)
    half = annotate(np.zeros((500, 500, 3), np.uint8), det, hw=(1000, 1000))
    _, xs = np.nonzero(full.max(axis=2))
    assert abs(xs.min() - 400) <= 3 and abs(xs.max() - 800) <= 3
    _, xs = np.nonzero(half.max(axis=2))
    assert abs(xs.min() - 200) <= 2 and abs(xs.max() - 400) <= 2          # x 400..800 drawn at half size
    cm = np.full((1000, 1000), 255, np.uint8)
    cm[:, 500:] = 1
    seg = Result("f", task=TaskResult(Task.SEGMENTATION, class_map=cm))
    out = annotate(np.full((500, 500, 3), 100, np.uint8), seg, hw=(1000, 1000))
    assert (out[:, :250] == 100).all() and (out[:, 250:] != 100).any(axis=2).all()
