"""Bounds on what a request may carry, beyond its types.

Each one keeps a value the database or the event loop cannot take away from them:
PostgreSQL refuses NUL characters in text and NaN in JSON, datetime arithmetic
overflows past the year 9999, and the OpenAPI document states every bound so that
clients (and schemathesis) know them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

from selfheal.configfile import DAY, bounded_duration

# unix seconds between 2000 and 2100: anything else is a wrong clock or a wrong unit
UNIX_MIN, UNIX_MAX = 946_684_800, 4_102_444_800
# a silence lasts a second to a year
SilenceDuration = Annotated[float, *bounded_duration(1.0, 366 * DAY)]


def _reasonable_time(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # a time without a zone is UTC, not local
    if not UNIX_MIN <= value.timestamp() <= UNIX_MAX:
        raise ValueError("must be a time between the years 2000 and 2100, e.g. 2030-01-31T12:00Z")
    return value


Instant = Annotated[
    datetime,
    AfterValidator(_reasonable_time),
    Field(description="ISO 8601 time between 2000 and 2100; without a zone it is UTC"),
]


def refuse_unstorable(value: Any, where: str = "") -> None:
    """Raise ``ValueError`` for a NUL character in any text (keys too) or a NaN or
    Infinity anywhere in a decoded JSON value; ``where`` names the place in messages."""
    prefix = f"{where}: " if where else ""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{prefix}text cannot contain the NUL character (\\u0000); remove it")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{prefix}numbers must be finite (no NaN or Infinity)")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_unstorable(key, where)
            inner = f"{where}.{key:.40}" if where else f"{key:.40}"
            refuse_unstorable(item, inner if isinstance(key, str) else where)
    elif isinstance(value, list):
        for item in value:
            refuse_unstorable(item, where)
