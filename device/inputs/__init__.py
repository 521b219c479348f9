"""Inputs: image files and MJPEG AVI frames decoded (bounded, OpenCV), and the preprocessing spec's one
implementation — the same code calibration runs on the workstation and the runner on the board."""

from .images import decode, is_image, read_bytes
from .pipeline import DecodePolicy, InputPlan, plan_input, prepare
from .preprocess import PRESETS, PreprocessSpec, dequantize, preprocess, quantize

__all__ = ["PRESETS", "DecodePolicy", "InputPlan", "PreprocessSpec", "decode", "dequantize", "is_image", "plan_input",
           "prepare", "preprocess", "quantize", "read_bytes"]
