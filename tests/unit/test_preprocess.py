"""The preprocessing spec and its one implementation (device/preprocess.py), against hand-computed values.

Images enter as OpenCV decodes them (gray, BGR, BGRA; 8 or 16 bit). A pixel written below as
``bgr(b, g, r)`` is the RGB colour (r, g, b).
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from keras_edge.device.contract.errors import DataError
from keras_edge.device.inputs.preprocess import (
    PRESETS,
    PreprocessSpec,
    dequantize,
    preprocess,
    preprocess_pixels,
    quantize,
    to_uint8_color,
)


def solid_bgr(b: int, g: int, r: int, h: int = 4, w: int = 4) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (b, g, r)
    return img


def spec(preset: str = "raw", h: int = 4, w: int = 4, c: int = 3, **kw) -> PreprocessSpec:
    return PreprocessSpec.from_preset(preset, h, w, c, **kw)


# --- presets: one pixel, RGB (200, 100, 50), worked out by hand --------------------------------------

PIXEL_BGR = solid_bgr(50, 100, 200)
EXPECTED = {
    "tf": [200 / 127.5 - 1, 100 / 127.5 - 1, 50 / 127.5 - 1],
    "torch": [(200 / 255 - 0.485) / 0.229, (100 / 255 - 0.456) / 0.224, (50 / 255 - 0.406) / 0.225],
    "caffe": [50 - 103.939, 100 - 116.779, 200 - 123.68],   # BGR order, ImageNet mean in BGR
    "unit": [200 / 255, 100 / 255, 50 / 255],
    "raw": [200.0, 100.0, 50.0],
}


def test_every_preset_has_a_hand_computed_expectation():
    assert set(EXPECTED) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_normalises_a_pixel_as_computed_by_hand(preset):
    out = preprocess(PIXEL_BGR, spec(preset))
    assert out.dtype == np.float32 and out.shape == (4, 4, 3)
    np.testing.assert_allclose(out[0, 0], EXPECTED[preset], rtol=0, atol=1e-5)
    assert np.all(out == out[0, 0]), "a solid image stays solid"


def test_tf_preset_spans_minus_one_to_one():
    out = preprocess(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8), spec("tf", 1, 2))
    np.testing.assert_allclose(out[0, :, 0], [-1.0, 1.0], atol=1e-6)


def test_unit_preset_spans_zero_to_one():
    out = preprocess(np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8), spec("unit", 1, 2))
    np.testing.assert_allclose(out[0, :, 0], [0.0, 1.0], atol=1e-6)


def test_caffe_preset_feeds_bgr_and_torch_feeds_rgb():
    assert spec("caffe").color == "bgr"
    assert spec("torch").color == "rgb"


def test_preset_on_a_one_channel_model_uses_the_first_mean_and_std():
    s = spec("torch", c=1)
    assert (s.color, s.mean, s.std) == ("gray", (0.485,), (0.229,))
    out = preprocess(np.full((4, 4), 51, np.uint8), s)
    assert out.shape == (4, 4, 1)
    np.testing.assert_allclose(out[0, 0, 0], (0.2 - 0.485) / 0.229, atol=1e-5)


def test_unknown_preset_is_a_data_error_listing_the_presets():
    with pytest.raises(DataError, match="unknown preprocessing preset 'inception'.*tf, torch, caffe, unit, raw"):
        spec("inception")


def test_explicit_scale_mean_std_per_channel():
    s = PreprocessSpec(4, 4, 3, scale=0.5, mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0), preset="custom")
    out = preprocess(PIXEL_BGR, s)
    np.testing.assert_allclose(out[0, 0], [(100 - 1) / 2, (50 - 2) / 4, (25 - 3) / 8], atol=1e-5)


def test_explicit_scalar_mean_and_std_broadcast_over_channels():
    s = PreprocessSpec(4, 4, 3, scale=1.0, mean=(10.0,), std=(5.0,), preset="custom")
    np.testing.assert_allclose(preprocess(PIXEL_BGR, s)[0, 0], [38.0, 18.0, 8.0], atol=1e-5)


def test_baked_spec_leaves_pixels_unnormalised():
    s = spec("torch", baked=True)
    np.testing.assert_array_equal(preprocess(PIXEL_BGR, s)[0, 0], [200.0, 100.0, 50.0])


def test_spec_round_trips_through_its_dict():
    s = spec("caffe", 8, 6, resize="letterbox", interpolation="area", pad_value=114, reason="why")
    assert PreprocessSpec.from_dict(s.to_dict()) == s


# --- parity with a plain NumPy reference, on a real photograph ---------------------------------------

@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preprocess_matches_a_numpy_reference(preset):
    rgb = skimage.data.astronaut()[100:164, 180:244]          # a 64×64 patch of a real photo, RGB
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])               # as OpenCV decodes it
    s = spec(preset, 64, 64)
    channels = rgb if s.color == "rgb" else bgr
    reference = (channels.astype(np.float64) * s.scale - np.array(s.mean)) / np.array(s.std)
    np.testing.assert_allclose(preprocess(bgr, s), reference, rtol=0, atol=1e-5)


# --- resize modes ------------------------------------------------------------------------------------

RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)   # BGR


def vertical_bands(h: int, w_each: int, colours) -> np.ndarray:
    return np.concatenate([solid_bgr(*c, h=h, w=w_each) for c in colours], axis=1)


def horizontal_bands(h_each: int, w: int, colours) -> np.ndarray:
    return np.concatenate([solid_bgr(*c, h=h_each, w=w) for c in colours], axis=0)


def pixels(img, **kw) -> np.ndarray:
    """The uint8 model input in RGB (raw preset) — resize and colour only."""
    return preprocess_pixels(img, spec("raw", **kw))


def test_stretch_resizes_to_the_target_ignoring_aspect():
    out = pixels(vertical_bands(10, 10, [RED, GREEN, BLUE]), h=6, w=9, resize="stretch", interpolation="nearest")
    assert out.shape == (6, 9, 3)
    np.testing.assert_array_equal(out[:, :3], np.broadcast_to((255, 0, 0), (6, 3, 3)))
    np.testing.assert_array_equal(out[:, 3:6], np.broadcast_to((0, 255, 0), (6, 3, 3)))
    np.testing.assert_array_equal(out[:, 6:], np.broadcast_to((0, 0, 255), (6, 3, 3)))


def test_crop_keeps_the_centre_of_a_wide_image():
    out = pixels(vertical_bands(10, 10, [RED, GREEN, BLUE]), h=5, w=5, resize="crop")
    assert out.shape == (5, 5, 3)
    assert np.all(out == (0, 255, 0)), "only the middle (green) band survives a centre crop"


def test_crop_keeps_the_centre_of_a_tall_image():
    out = pixels(horizontal_bands(10, 10, [RED, BLUE, GREEN]), h=5, w=5, resize="crop")
    assert out.shape == (5, 5, 3)
    assert np.all(out == (0, 0, 255))


def test_crop_to_a_wide_target_keeps_the_middle_rows():
    img = np.concatenate([solid_bgr(*RED, h=5, w=20), solid_bgr(*GREEN, h=10, w=20), solid_bgr(*BLUE, h=5, w=20)])
    out = pixels(img, h=10, w=20, resize="crop")
    assert out.shape == (10, 20, 3)
    assert np.all(out == (0, 255, 0))


def test_letterbox_pads_a_wide_image_above_and_below_with_pad_value():
    img = horizontal_bands(5, 20, [RED, BLUE])            # 10×20: red top half, blue bottom half
    out = pixels(img, h=20, w=20, resize="letterbox", pad_value=114)
    assert out.shape == (20, 20, 3)
    assert np.all(out[:5] == 114) and np.all(out[15:] == 114)
    assert np.all(out[5:10] == (255, 0, 0)) and np.all(out[10:15] == (0, 0, 255))


def test_letterbox_pads_a_tall_image_left_and_right():
    img = vertical_bands(20, 5, [GREEN, RED])              # 20×10 → scaled ×2 into 40×40
    out = pixels(img, h=40, w=40, resize="letterbox", interpolation="nearest")
    assert out.shape == (40, 40, 3)
    assert np.all(out[:, :10] == 0) and np.all(out[:, 30:] == 0)
    assert np.all(out[:, 10:20] == (0, 255, 0)) and np.all(out[:, 20:30] == (255, 0, 0))


def test_letterbox_of_a_gray_model_keeps_one_channel():
    out = pixels(skimage.data.camera(), h=32, w=16, c=1, resize="letterbox", pad_value=7)
    assert out.shape == (32, 16, 1)
    assert np.all(out[:8] == 7) and np.all(out[24:] == 7)


@pytest.mark.parametrize("mode", ["stretch", "crop", "letterbox"])
def test_every_resize_mode_gives_the_target_shape_for_a_real_photo(mode):
    out = preprocess(np.ascontiguousarray(skimage.data.coffee()[:, :, ::-1]), spec("tf", 24, 32, resize=mode))
    assert out.shape == (24, 32, 3) and out.dtype == np.float32
    assert -1.0 <= out.min() and out.max() <= 1.0


# --- colour conversion -------------------------------------------------------------------------------

@pytest.mark.parametrize("gray", [np.full((4, 4), 77, np.uint8), np.full((4, 4, 1), 77, np.uint8)], ids=["2d", "hw1"])
def test_gray_image_fills_all_three_channels(gray):
    assert np.all(to_uint8_color(gray, spec()) == 77)
    assert to_uint8_color(gray, spec()).shape == (4, 4, 3)


def test_bgr_image_becomes_rgb_for_an_rgb_model():
    np.testing.assert_array_equal(to_uint8_color(PIXEL_BGR, spec())[0, 0], [200, 100, 50])


def test_bgr_image_stays_bgr_for_a_bgr_model():
    np.testing.assert_array_equal(to_uint8_color(PIXEL_BGR, spec(color="bgr"))[0, 0], [50, 100, 200])


def test_bgra_image_drops_alpha():
    bgra = np.dstack([PIXEL_BGR, np.full((4, 4), 9, np.uint8)])
    out = to_uint8_color(bgra, spec())
    assert out.shape == (4, 4, 3)
    np.testing.assert_array_equal(out[0, 0], [200, 100, 50])


def test_color_image_becomes_luma_for_a_gray_model():
    out = to_uint8_color(solid_bgr(*RED), spec(c=1))      # 0.299 * 255 = 76.2
    assert out.shape == (4, 4) and np.all(out == 76)


def test_sixteen_bit_image_is_scaled_to_eight_bit():
    img16 = np.array([[0, 257 * 128, 65535, 257]], np.uint16)
    np.testing.assert_array_equal(to_uint8_color(img16, spec(c=1)), [[0, 128, 255, 1]])


def test_sixteen_bit_color_image_is_scaled_and_reordered():
    img16 = (PIXEL_BGR.astype(np.uint16) * 257)
    np.testing.assert_array_equal(to_uint8_color(img16, spec())[0, 0], [200, 100, 50])


def test_unsupported_pixel_type_is_a_data_error():
    with pytest.raises(DataError, match="unsupported pixel type int32"):
        to_uint8_color(np.zeros((2, 2), np.int32), spec())


# --- quantisation ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,scale,zero_point", [("uint8", 2 / 255, 128), ("int8", 0.02, -3)])
def test_quantize_dequantize_round_trip_within_one_step(dtype, scale, zero_point):
    info = np.iinfo(dtype)
    lo, hi = (info.min - zero_point) * scale, (info.max - zero_point) * scale
    x = np.random.default_rng(0).uniform(lo, hi, size=1000).astype(np.float32)
    q = quantize(x, dtype, scale, zero_point)
    assert q.dtype == np.dtype(dtype)
    assert np.abs(dequantize(q, scale, zero_point) - x).max() <= scale / 2 + 1e-6


def test_quantize_clips_to_the_integer_range():
    q = quantize(np.array([-100.0, 100.0], np.float32), "int8", 0.1, 0)
    np.testing.assert_array_equal(q, [-128, 127])


def test_quantize_to_float_is_a_cast():
    x = np.array([0.25], np.float64)
    assert quantize(x, "float32", 0.0, 0).dtype == np.float32


def test_dequantize_of_float_output_is_unchanged():
    x = np.array([0.5, -1.5], np.float32)
    np.testing.assert_array_equal(dequantize(x, 0.0, 0), x)


# --- invalid specs -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,message", [
    (dict(std=(1.0, 0.0, 1.0)), "std contains 0"),
    (dict(mean=(1.0, 2.0)), "mean has 2 values for a 3-channel input; give one value for all channels or 3"),
    (dict(std=(1.0, 2.0)), "std has 2 values for a 3-channel input"),
    (dict(channels=1, mean=(1.0, 2.0, 3.0)), "mean has 3 values for a 1-channel input; give one value \\(the input is gray"),
    (dict(resize="zoom"), "unknown resize 'zoom'"),
    (dict(interpolation="lanczos9"), "unknown interpolation 'lanczos9'"),
    (dict(color="cmyk"), "unknown color 'cmyk'"),
    (dict(height=0), "input_shape 0x4 is not positive"),
    (dict(channels=4), "4-channel image input is not supported"),
])
def test_invalid_spec_is_a_data_error(kwargs, message):
    fields = dict(height=4, width=4, channels=3) | kwargs
    with pytest.raises(DataError, match=message):
        PreprocessSpec(**fields)
