"""The health JSON is read without trusting it."""

from __future__ import annotations

import pytest

from selfheal.checks.health_body import apply_health_body
from selfheal.checks.sample import Sample
from selfheal.types import ServiceKey


def read(body: bytes) -> Sample:
    sample = Sample(ServiceKey("t", "s"), 0.0, True, 1.0)
    apply_health_body(sample, body)
    return sample


def test_contract_fields_and_extras() -> None:
    s = read(
        b'{"status":"Degraded","cpu":50,"memory":70.5,"error_rate":0.1,"latency_ms":99,"v":"2"}'
    )
    assert (s.reported_status, s.cpu, s.memory, s.error_rate, s.latency_ms) == (
        "degraded",
        50.0,
        70.5,
        0.1,
        99.0,
    )
    assert s.details == {"v": "2"}


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"OK",
        b"[1, 2]",
        b"{not json",
        b'{"cpu": "high", "memory": null, "error_rate": true, "latency_ms": -5}',
        b'{"cpu": 1e999, "memory": 101, "error_rate": 2, "status": 7}',
        b'"just a string"',
    ],
)
def test_malformed_or_lying_bodies_are_ignored(body: bytes) -> None:
    s = read(body)
    assert s.ok
    assert (s.cpu, s.memory, s.error_rate, s.latency_ms, s.reported_status) == (None,) * 5
