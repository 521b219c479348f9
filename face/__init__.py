"""keras-edge: take a trained Keras model to a Raspberry Pi or other ARM board, and make it fast there.

The Python API (documented in :mod:`keras_edge.api`, the same calls the CLI makes)::

    import keras_edge as ke

    result = ke.convert(ke.ConvertConfig(model="digits.keras", out="bundles/digits", calib="data/train"))
    with ke.open_bundle("bundles/digits") as model:          # board side: no TensorFlow needed
        print(model.run("data/eval/3/0001.png").top[0])

Names are loaded on first use, so ``import keras_edge`` costs nothing and pulls in no TensorFlow.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.2.0"

# public name → module that defines it (all re-exported by keras_edge.api)
_API = ("ConvertConfig", "ConvertResult", "PreprocessOptions", "PruneConfig", "PruneSpec", "PruneResult",
        "DeployConfig", "SshOptions", "EngineOptions", "BenchConfig", "EdgeError", "ConfigError", "ServeConfig",
        "convert", "open_bundle", "bench", "prune", "deploy", "rollback", "serve", "verify")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(import_module("keras_edge.api"), name)
    raise AttributeError(f"module 'keras_edge' has no attribute {name!r}")
