"""``bench``: each (variant, threads, accelerator) measured in a fresh worker process (:mod:`.worker`, started by
the engine's launcher), init, first and steady-state latency, peak RSS, side by side."""

from .measure import BenchConfig, BenchReport, BenchResult, bench, write_json

__all__ = ["BenchConfig", "BenchReport", "BenchResult", "bench", "write_json"]
