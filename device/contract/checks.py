"""Field checks for configuration dataclasses: each failure is a :class:`ConfigError` naming the field."""

from __future__ import annotations

import math
from enum import Enum
from typing import TypeVar

from .errors import ConfigError

E = TypeVar("E", bound=Enum)


def positive_int(field: str, value: int, example: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        below = "negative" if minimum == 0 else f"below {minimum}"
        raise ConfigError(field, f"is {value!r}, {below}" if isinstance(value, int) else f"{value!r} is not an integer",
                          f"give {example}")
    return value


def positive_float(field: str, value: float, example: str) -> float:
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ConfigError(field, f"{value} is not positive", f"give {example}")
    return v


def in_range(field: str, value: float, lo: float, hi: float, example: str, *, hi_open: bool = True,
             lo_open: bool = False) -> float:
    v = float(value)
    ok = math.isfinite(v) and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok:
        span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(field, f"{value} is outside {span}", f"give {example}")
    return v


def choice(field: str, value: object, enum: type[E]) -> E:
    try:
        return enum(value)
    except ValueError:
        raise ConfigError(field, f"{value!r} is not a known {field.rpartition('.')[2].replace('_', ' ')}",
                          f"use one of: {', '.join(str(e.value) for e in enum)}") from None
