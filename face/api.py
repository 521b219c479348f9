"""The Python API: the same calls the ``keras-edge`` command makes, with typed configuration.

Inputs are frozen dataclasses validated on construction; errors are :class:`EdgeError` subclasses,
and a bad field raises :class:`ConfigError` naming the field (``calib_samples``), not a flag.
Workstation calls (``convert``, ``prune``) import TensorFlow when called; board calls
(``open_bundle``, ``verify``, ``bench``) never do, and ``deploy``/``rollback`` need only OpenSSH.

Example::

    import keras_edge as ke

    result = ke.convert(ke.ConvertConfig(model=model, out="bundles/digits", calib="data/train"))
    with ke.open_bundle("bundles/digits", variant="int8") as m:
        print(m.run("data/eval/3/0001.png").top[0])          # Prediction(index=3, score=0.99, label='3')
    report = ke.bench(ke.BenchConfig(target="bundles/digits", variants="all"))
    slowest = ke.profile(ke.ProfileConfig(target="bundles/digits", variant="int8")).top(5)
    ke.deploy(ke.DeployConfig("bundles/digits"), ["pi@board1"])
    ke.serve(ke.ServeConfig("bundles/digits", camera=0))      # http://127.0.0.1:8080/ until Ctrl-C
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from keras_edge.device.bench import BenchConfig, BenchReport
from keras_edge.device.engine import EngineOptions
from keras_edge.device.contract import ConfigError, EdgeError
from keras_edge.device.run import RunConfig, Runner, open_runner
from keras_edge.device.health import VerifyReport, verify_bundle
from keras_edge.device.profile import Profile, ProfileConfig

if TYPE_CHECKING:  # the workstation types, without importing TensorFlow at API import time
    from keras_edge.host.convert import ConvertConfig, ConvertResult
    from keras_edge.host.deploy import DeployConfig, HostResult, SshOptions
    from keras_edge.host.prune import PruneConfig, PruneResult
    from keras_edge.device.serve.server import ServeConfig

Log = Callable[[str], None]
_LAZY = {"ConvertConfig": "keras_edge.host.convert", "ConvertResult": "keras_edge.host.convert",
         "PreprocessOptions": "keras_edge.host.preprocessing", "PruneConfig": "keras_edge.host.prune",
         "PruneSpec": "keras_edge.host.prune", "PruneResult": "keras_edge.host.prune",
         "DeployConfig": "keras_edge.host.deploy", "SshOptions": "keras_edge.host.deploy",
         "ServeConfig": "keras_edge.device.serve.server"}

__all__ = ["BenchConfig", "ConfigError", "EdgeError", "EngineOptions", "ProfileConfig", *_LAZY, "bench", "convert",
           "deploy", "open_bundle", "profile", "prune", "rollback", "serve", "verify"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_edge.api' has no attribute {name!r}")


def convert(config: "ConvertConfig", log: Log = lambda s: None,
            progress: Callable[[int, int], None] | None = None) -> "ConvertResult":
    """Convert ``config.model`` (a path or a Keras model object) into a validated bundle at ``config.out``.

    ``log`` gets one line per step; ``progress(done, total)`` follows image loading."""
    from keras_edge.host.convert import convert as run

    return run(config, log=log, progress=progress)


def open_bundle(target: str, variant: str | None = None, engine: EngineOptions = EngineOptions(),
                labels: str | None = None, preprocess: str | None = None) -> Runner:
    """Load a bundle (or a bare ``.tflite``) on its engine; ``.run(image_path | array)`` gives a ``Result``."""
    return open_runner(RunConfig(target=str(target), variant=variant, engine=engine, labels=labels,
                                 preprocess=preprocess))


def verify(bundle: str, engine: EngineOptions = EngineOptions(), variants: Sequence[str] | None = None) -> VerifyReport:
    """Check a bundle's checksums and run its reference inputs through each variant."""
    return verify_bundle(bundle, engine, list(variants) if variants else None)


def bench(config: BenchConfig, progress: Log = lambda s: None) -> BenchReport:
    """Benchmark variants, each in a fresh process: init, first run, p50/p90/p99, peak RSS."""
    from keras_edge.device.bench import bench as run

    return run(config, progress=progress)


def serve(config: "ServeConfig", log: Log = print) -> None:
    """Serve a bundle over HTTP (live page, ``POST /infer``, ``/healthz``, ``/metrics``) until SIGINT/SIGTERM."""
    from keras_edge.device.serve.server import serve as run

    run(config, log=log)


def profile(config: ProfileConfig, progress: Log = lambda s: None) -> Profile:
    """A per-op profile: each op's type, shapes, time and share, and whether XNNPACK runs it (and why not)."""
    from keras_edge.device.profile.core import profile as run

    return run(config, progress=progress)


def prune(model: Any, config: "PruneConfig", x: Any = None, y: Any = None, x_val: Any = None,
          y_val: Any = None) -> "PruneResult":
    """Prune a Keras model object (magnitude or channels) and fine-tune it on ``x``/``y``."""
    from keras_edge.host.prune import prune_with

    return prune_with(model, config, x, y, x_val, y_val)


def deploy(config: "DeployConfig", hosts: Sequence[str], on_event: Callable[[str, str], None] | None = None
           ) -> list["HostResult"]:
    """Copy a bundle to boards over SSH, verify it there, and switch ``current`` atomically."""
    from keras_edge.host.deploy import deploy_many

    return deploy_many(config, hosts, on_event=on_event)


def rollback(name: str, hosts: Sequence[str], ssh: "SshOptions | None" = None, jobs: int = 8,
             on_event: Callable[[str, str], None] | None = None) -> list["HostResult"]:
    """Switch bundle ``name`` on each board back to its previous version."""
    from keras_edge.host.deploy import rollback_many

    return rollback_many(name, hosts, ssh, jobs=jobs, on_event=on_event)
