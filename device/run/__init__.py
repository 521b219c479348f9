"""``run``: sources (:mod:`.sources`, a registry) read by a reader, decoded and preprocessed by workers, inferred
and postprocessed by one consumer in input order (:mod:`.workers`, :mod:`.runner`), drawn when asked (:mod:`.draw`)."""

from .runner import RunConfig, Runner, open_runner, run
from .sources import SOURCES
from .types import Result, Summary

__all__ = ["SOURCES", "Result", "RunConfig", "Runner", "Summary", "open_runner", "run"]
