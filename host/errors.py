"""The workstation's own user-facing failures (the board side's are in keras_edge.device.contract.errors,
whose :class:`EdgeError` family these join: the CLI prints any of them as one line)."""

from __future__ import annotations

from keras_edge.device.contract import EdgeError


class ConversionError(EdgeError):
    """Conversion cannot go on at all (single-variant failures are recorded, not raised)."""


class RemoteError(EdgeError):
    """A board could not be reached or refused an operation."""
