"""The engine: which runtime is installed (LiteRT, tflite-runtime, TensorFlow Lite), a model loaded on the backend
that really runs it (:mod:`.backends`: XNNPACK on the CPU, a GPU delegate, LiteRT's GPU accelerator), GPU adapters
named by kind, the one child-process launcher, this machine's facts, and the target (a bundle's variant or a bare
``.tflite``) that a command runs."""

from .core import Accelerator, Backend, Engine, EngineOptions, load, sample_inputs
from .gpu import DEFAULT_TIMEOUT_S, Adapter
from .runtime import default_threads, select_runtime
from .target import Target, is_bundle, open_target

__all__ = ["DEFAULT_TIMEOUT_S", "Accelerator", "Adapter", "Backend", "Engine", "EngineOptions", "Target",
           "default_threads", "is_bundle", "load", "open_target", "sample_inputs", "select_runtime"]
