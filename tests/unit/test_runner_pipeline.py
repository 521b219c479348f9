"""Parity of the runner's OpenCV preprocessing: against a plain NumPy reference of the same spec, and
against the host's calibration path. Real photographs from scikit-image, written as real files.

Tolerances (the issue's): float tensors within 1e-5 and integer tensors within one quantization step.
Where OpenCV resamples with fixed-point weights (bilinear/area) a float reference can land one pixel
level away; the NumPy comparison then allows exactly one pixel level, expressed in tensor units.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest
from skimage import data as skdata

from keras_edge.device.contract.bundle import TensorSpec
from keras_edge.device.inputs.pipeline import (jpeg_size, max_abs_diff, plan_input, prepare, prepare_array, reduce_factor,
                                        to_tensor)
from keras_edge.device.inputs.preprocess import PreprocessSpec, preprocess, quantize

# (dtype, scale, zero point) of the input tensor the spec feeds
TENSORS = {"float32": ("float32", 0.0, 0), "float16": ("float16", 0.0, 0),
           "uint8": ("uint8", 1 / 127.5, 128), "int8": ("int8", 1 / 127.5, 0), "uint8-raw": ("uint8", 1.0, 0)}


def tensor(shape, kind: str) -> TensorSpec:
    dtype, scale, zp = TENSORS[kind]
    return TensorSpec("input", shape, dtype, scale, zp)


@pytest.fixture(scope="module")
def photo_bgr() -> np.ndarray:
    return cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR)  # 512x512 real photograph


# ---- a plain NumPy reference of the spec (no OpenCV)
def np_color(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    if img.dtype == np.uint16:
        img = ((img.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim == 2:
        return img if spec.color == "gray" else np.repeat(img[:, :, None], 3, axis=2)
    b, g, r = (img[:, :, i].astype(np.int32) for i in range(3))
    if spec.color == "gray":  # ITU-R 601 weights in OpenCV's 14-bit fixed point
        return ((b * 1868 + g * 9617 + r * 4899 + (1 << 13)) >> 14).astype(np.uint8)
    return img[:, :, ::-1] if spec.color == "rgb" else img


def np_crop(img: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    h, w = img.shape[:2]
    if spec.resize != "crop":
        return img
    if w / h > spec.width / spec.height:
        cw = round(h * spec.width / spec.height)
        x0 = (w - cw) // 2
        return img[:, x0:x0 + cw]
    ch = round(w * spec.height / spec.width)
    y0 = (h - ch) // 2
    return img[y0:y0 + ch]


def np_resize(img: np.ndarray, th: int, tw: int, interp: str) -> np.ndarray:
    h, w = img.shape[:2]
    x = img.astype(np.float64)
    if interp == "nearest":
        ys, xs = (np.arange(th) * h) // th, (np.arange(tw) * w) // tw
        return img[ys][:, xs]
    if interp == "area":
        fy, fx = h // th, w // tw
        assert fy * th == h and fx * tw == w, "the reference does integer-factor area only"
        return np.floor(x.reshape(th, fy, tw, fx, *x.shape[2:]).mean(axis=(1, 3)) + 0.5).astype(np.uint8)
    # bilinear, half-pixel centres (OpenCV's geometry)
    sy = np.clip((np.arange(th) + 0.5) * h / th - 0.5, 0, h - 1)
    sx = np.clip((np.arange(tw) + 0.5) * w / tw - 0.5, 0, w - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = (sy - y0)[:, None], (sx - x0)[None, :]
    if x.ndim == 3:
        wy, wx = wy[..., None], wx[..., None]
    top = x[y0][:, x0] * (1 - wx) + x[y0][:, x1] * wx
    bot = x[y1][:, x0] * (1 - wx) + x[y1][:, x1] * wx
    return np.floor(top * (1 - wy) + bot * wy + 0.5).astype(np.uint8)


def np_reference(img: np.ndarray, spec: PreprocessSpec, t: TensorSpec) -> np.ndarray:
    px = np_crop(np_color(img, spec), spec)
    if spec.resize == "letterbox":
        h, w = px.shape[:2]
        r = min(spec.height / h, spec.width / w)
        nh, nw = round(h * r), round(w * r)
        inner = np_resize(px, nh, nw, spec.interpolation)
        px = np.full((spec.height, spec.width) + px.shape[2:], spec.pad_value, np.uint8)
        y0, x0 = (spec.height - nh) // 2, (spec.width - nw) // 2
        px[y0:y0 + nh, x0:x0 + nw] = inner
    else:
        px = np_resize(px, spec.height, spec.width, spec.interpolation)
    x = px.astype(np.float32).reshape(spec.height, spec.width, spec.channels)
    if not (spec.baked or spec.identity_normalization):
        x = (x * np.float32(spec.scale) - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return quantize(x, t.dtype, t.scale, t.zero_point)[None]


def one_level(spec: PreprocessSpec, t: TensorSpec) -> float:
    """One pixel level in tensor units (what fixed-point resampling may move a pixel by)."""
    if np.dtype(t.dtype).kind in "iu":
        return 1.0
    return float(spec.scale / min(spec.std)) if not (spec.baked or spec.identity_normalization) else 1.0


CASES = [  # (preset, channels, resize, interpolation, source size) — integer factors keep the reference exact
    ("tf", 3, "stretch", "nearest", (256, 256)),
    ("torch", 3, "crop", "nearest", (256, 384)),
    ("caffe", 3, "stretch", "area", (256, 256)),
    ("unit", 1, "stretch", "nearest", (512, 512)),
    ("raw", 3, "letterbox", "nearest", (256, 512)),
    ("tf", 3, "stretch", "bilinear", (256, 256)),
    ("raw", 1, "crop", "bilinear", (256, 384)),
]


@pytest.mark.parametrize("kind", list(TENSORS))
@pytest.mark.parametrize("preset,channels,mode,interp,size", CASES)
def test_matches_numpy_reference(photo_bgr, preset, channels, mode, interp, size, kind):
    img = cv2.resize(photo_bgr, size[::-1], interpolation=cv2.INTER_AREA)
    spec = PreprocessSpec.from_preset(preset, 128, 128, channels, resize=mode, interpolation=interp)
    t = tensor((1, 128, 128, channels), kind)
    got = prepare_array(img, plan_input(spec, t)).astype(np.float64)
    want = np_reference(img, spec, t).astype(np.float64)
    assert got.shape == want.shape
    exact = interp == "nearest" and channels == 3  # no fixed-point resampling or gray weights involved
    if np.dtype(t.dtype).kind in "iu":
        tol = 1.0
    elif t.dtype == "float16":
        tol = (1e-5 if exact else one_level(spec, t)) + 2e-3 * np.abs(want).max()  # half precision spacing
    else:
        tol = 1e-5 if exact else one_level(spec, t) + 1e-5
    assert np.max(np.abs(got - want)) <= tol


@pytest.mark.parametrize("kind", list(TENSORS))
@pytest.mark.parametrize("preset", ["tf", "torch", "caffe", "unit", "raw"])
def test_value_table_is_bit_identical_to_normalize_then_quantize(photo_bgr, preset, kind):
    """The fast path (one cv2.LUT) against the single implementation calibration uses."""
    spec = PreprocessSpec.from_preset(preset, 96, 96, 3, resize="crop")
    t = tensor((1, 96, 96, 3), kind)
    plan = plan_input(spec, t)
    want = quantize(preprocess(photo_bgr, spec), t.dtype, t.scale, t.zero_point)[None]
    got = prepare_array(photo_bgr, plan)
    assert got.dtype == want.dtype and np.array_equal(got, want)


def test_identity_table_is_skipped_and_nchw_layout(photo_bgr):
    spec = PreprocessSpec.from_preset("raw", 64, 64, 3)
    assert plan_input(spec, tensor((1, 64, 64, 3), "uint8-raw")).lut is None
    nchw = plan_input(PreprocessSpec.from_preset("tf", 64, 64, 3), tensor((1, 3, 64, 64), "float32"))
    nhwc = plan_input(PreprocessSpec.from_preset("tf", 64, 64, 3), tensor((1, 64, 64, 3), "float32"))
    a, b = prepare_array(photo_bgr, nchw), prepare_array(photo_bgr, nhwc)
    assert a.shape == (1, 3, 64, 64) and np.array_equal(a, b.transpose(0, 3, 1, 2))


def test_matches_the_host_calibration_path(tmp_path, photo_bgr):
    """Calibration on the host and the runner on the board feed identical tensors."""
    from keras_edge.calibration.dataset import load_records, scan_folder

    for i, img in enumerate([photo_bgr, cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR),
                             skdata.camera(), cv2.cvtColor(skdata.chelsea(), cv2.COLOR_RGB2BGRA)]):
        cv2.imwrite(str(tmp_path / f"img {i}.png"), img)
    cv2.imwrite(str(tmp_path / "deep.png"), skdata.camera().astype(np.uint16) * 257)
    for preset, kind in (("torch", "float32"), ("tf", "int8"), ("raw", "uint8-raw")):
        spec = PreprocessSpec.from_preset(preset, 100, 100, 3, resize="crop", interpolation="area")
        t = tensor((1, 100, 100, 3), kind)
        index = scan_folder(tmp_path)
        host = load_records(index.records, spec).x
        plan = plan_input(spec, t)
        for rec, x in zip(index.records, host):
            board = prepare(rec.path.read_bytes(), str(rec.path), plan).tensor
            want = quantize(x[None], t.dtype, t.scale, t.zero_point)
            assert np.array_equal(board, want), (rec.path.name, preset, kind)


def test_reduced_jpeg_decoding_is_measured_and_refused_beyond_tolerance(tmp_path, photo_bgr):
    big = cv2.resize(np.concatenate([photo_bgr[:400], cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR)], 1),
                     (1920, 1080), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    data = buf.tobytes()
    assert jpeg_size(data) == (1080, 1920)
    spec = PreprocessSpec.from_preset("tf", 224, 224, 3, interpolation="area")
    assert reduce_factor(data, spec) == 4  # 1080/4 = 270 >= 224, 1080/8 = 135 < 224
    assert reduce_factor(data, PreprocessSpec.from_preset("tf", 600, 600, 3)) == 1
    png = cv2.imencode(".png", big)[1].tobytes()
    assert jpeg_size(png) is None and reduce_factor(png, spec) == 1

    plan = plan_input(spec, tensor((1, 224, 224, 3), "int8"))
    full, reduced = prepare(data, "x", plan), prepare(data, "x", plan, 4)
    assert reduced.reduce == 4 and full.tensor.shape == reduced.tensor.shape
    # the reduced tensor is not the spec's: a run in auto mode must measure that and decode at full size
    assert np.max(np.abs(full.tensor.astype(int) - reduced.tensor.astype(int))) > 1


def test_max_abs_diff_is_exact_for_every_tensor_type(tmp_path, photo_bgr):
    """The probe's comparison (one wide buffer) equals the float64 reference on real prepared tensors."""
    ok, buf = cv2.imencode(".jpg", cv2.resize(photo_bgr, (1024, 1024), interpolation=cv2.INTER_CUBIC))
    data = buf.tobytes()
    spec = PreprocessSpec.from_preset("tf", 224, 224, 3, interpolation="area")
    for kind in ("int8", "uint8", "float32", "float16"):
        plan = plan_input(spec, tensor((1, 224, 224, 3), kind))
        a, b = prepare(data, "x", plan).tensor, prepare(data, "x", plan, 4).tensor
        want = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
        assert want > 0 and max_abs_diff(a, b) == want, kind
    # the extremes of 8-bit types do not wrap
    lo, hi = np.array([-128, 127], np.int8), np.array([127, -128], np.int8)
    assert max_abs_diff(lo, hi) == 255.0
    assert max_abs_diff(np.array([0], np.uint8), np.array([255], np.uint8)) == 255.0
    assert max_abs_diff(np.zeros(0, np.int8), np.zeros(0, np.int8)) == 0.0


def test_to_tensor_single_channel_table():
    spec = PreprocessSpec.from_preset("unit", 4, 4, 1)
    plan = plan_input(spec, tensor((1, 4, 4, 1), "int8"))
    px = np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16
    want = quantize(px.astype(np.float32) * np.float32(1 / 255), "int8", 1 / 127.5, 0)[None]
    assert np.array_equal(to_tensor(px, plan), want)


@pytest.fixture(scope="module")
def frame_1080p_bgr() -> np.ndarray:
    """Real photographs tiled into a 1920x1080 BGR frame (a camera's size and colour order)."""
    tiles = [cv2.cvtColor(f(), cv2.COLOR_RGB2BGR) for f in (skdata.astronaut, skdata.coffee, skdata.chelsea,
                                                             skdata.rocket)]
    rows = [np.concatenate([cv2.resize(t, (480, 540), interpolation=cv2.INTER_AREA) for t in tiles], 1)] * 2
    return np.ascontiguousarray(np.concatenate(rows, 0)[:, ::-1])


@pytest.mark.parametrize("color", ["rgb", "bgr"])
@pytest.mark.parametrize("mode", ["stretch", "crop", "letterbox"])
@pytest.mark.parametrize("interp", ["nearest", "bilinear", "area", "bicubic"])
def test_fast_path_is_bit_identical_to_the_reference(frame_1080p_bgr, color, mode, interp):
    """Resize-then-swap (the runner) against the spec's reference (swap, resize, normalise, quantise)."""
    spec = PreprocessSpec.from_preset("tf", 224, 224, 3, color=color, resize=mode, interpolation=interp, pad_value=7)
    for kind in ("int8", "uint8", "float32", "uint8-raw"):
        t = tensor((1, 224, 224, 3), kind)
        plan = plan_input(spec, t)
        for img in (frame_1080p_bgr, frame_1080p_bgr[101:701, 333:1201], frame_1080p_bgr[:224, :224]):
            want = quantize(preprocess(img, spec), t.dtype, t.scale, t.zero_point)[None]
            got = prepare_array(img, plan)
            assert got.dtype == want.dtype and np.array_equal(got, want), (kind, img.shape)


def test_other_inputs_keep_the_reference_path(frame_1080p_bgr):
    """Gray targets, alpha, gray sources and 16-bit frames: still exactly the reference."""
    small = frame_1080p_bgr[::4, ::4]
    for img, channels in ((cv2.cvtColor(small, cv2.COLOR_BGR2BGRA), 3), (cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), 3),
                          (small.astype(np.uint16) * 257, 3), (small, 1)):
        spec = PreprocessSpec.from_preset("unit", 100, 120, channels, interpolation="bilinear")
        t = tensor((1, 100, 120, channels), "int8")
        want = quantize(preprocess(img, spec), t.dtype, t.scale, t.zero_point)[None]
        assert np.array_equal(prepare_array(img, plan_input(spec, t)), want)
