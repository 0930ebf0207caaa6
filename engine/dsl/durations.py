"""Durations as marketers write them: ``90s``, ``30m``, ``1h``, ``2d``, ``1w``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+)([smhdw])")
PATTERN = r"^(\d+[smhdw])+$"


def parse_duration(value: Any) -> timedelta:
    """Parse ``"1h30m"`` into a timedelta; a timedelta passes through.

    Raises ValueError with the expected form for anything else (pydantic turns it into a located
    error).
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str) or not re.fullmatch(PATTERN, value.strip()):
        raise ValueError(
            f"expected a duration such as 30m, 1h, 2d or 1w (units s m h d w), got {value!r}"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(value.strip()))
    if seconds <= 0:
        raise ValueError(f"a duration must be longer than zero, got {value!r}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest text that parses back to ``value`` (``timedelta(days=7)`` -> ``"1w"``)."""
    seconds = int(value.total_seconds())
    parts: list[str] = []
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            # As `parse_duration` reads it: white space around, and longer than zero.
            "pattern": r"^\s*(?=\S*[1-9])([0-9]+[smhdw])+\s*$",
            "description": "A duration: a number and a unit s m h d w, e.g. 30m, 2d, 1h30m.",
            "examples": ["30m", "1h", "2d", "1w"],
        }
    ),
]
