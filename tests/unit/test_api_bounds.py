"""What a request may not carry: NUL characters, NaN and Infinity, times out of range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from selfheal.api.bounds import Instant, refuse_unstorable


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("a\x00b", ["NUL", "remove it"]),
        ({"k\x00": 1}, ["NUL"]),
        ({"a": {"b": ["ok", "x\x00"]}}, ["a.b", "NUL"]),
        ({"a": float("nan")}, ["a", "finite"]),
        ([1.0, float("-inf")], ["finite"]),
    ],
)
def test_unstorable_values_are_refused(value: Any, words: list[str]) -> None:
    with pytest.raises(ValueError, match=r"NUL|finite") as refused:
        refuse_unstorable(value)
    for word in words:
        assert word in str(refused.value)


@pytest.mark.parametrize("value", ["text", {"n": 2**70, "f": 1.5, "l": [None, True]}, 3])
def test_storable_values_pass(value: Any) -> None:
    refuse_unstorable(value)


class _Window(BaseModel):
    at: Instant


def test_a_time_without_a_zone_is_utc() -> None:
    assert _Window(at="2030-01-31T12:00:00").at == datetime(2030, 1, 31, 12, tzinfo=UTC)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1999-12-31"])
def test_times_far_away_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="between the years 2000 and 2100"):
        _Window(at=value)  # type: ignore[arg-type]
