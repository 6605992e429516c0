"""Event bus, ranking, state machine, severity, crypto, auth, history, rollups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from selfheal.auth import KeyStore, Principal, StoredKey, allows
from selfheal.checks.history import History
from selfheal.checks.rollup import RollupBuffer
from selfheal.checks.sample import Sample
from selfheal.crypto import SecretBox
from selfheal.decisions.ranking import Candidate, Evidence, rank
from selfheal.errors import ConfigError
from selfheal.events import EventBus
from selfheal.incidents.severity import classify
from selfheal.incidents.state import TRANSITIONS, sources_of
from selfheal.logging import REDACTED, redact_secrets
from selfheal.storage.repositories.tenants import hash_key
from selfheal.types import IncidentStatus, IncidentType, ServiceKey, Severity

KEY = ServiceKey("t", "s")


async def test_bus_delivers_per_tenant_and_drops_oldest_when_slow() -> None:
    bus = EventBus()
    mine = bus.subscribe("a", maxsize=2)
    everyone = bus.subscribe(None)
    seen: list[str] = []
    bus.add_listener(lambda e: seen.append(e.type))
    for i in range(3):
        bus.publish("x", "a", {"i": i})
    bus.publish("x", "b", {"i": 99})
    assert mine.dropped == 1
    assert [(await mine.get()).data["i"], (await mine.get()).data["i"]] == [1, 2]  # type: ignore[union-attr]
    assert await mine.get(timeout=0.01) is None
    assert len(seen) == 4
    got = [e.data["i"] async for e in _take(everyone, 4)]
    assert got == [0, 1, 2, 99]
    mine.close()
    bus.publish("x", "a", {})
    assert await mine.get(timeout=0.01) is None


async def _take(sub, n):
    for _ in range(n):
        yield await sub.get(timeout=1)


async def test_bus_survives_a_broken_listener() -> None:
    bus = EventBus()
    bus.add_listener(lambda e: 1 / 0)
    sub = bus.subscribe("a")
    bus.publish("x", "a", {})
    assert (await asyncio.wait_for(sub.get(), 1)) is not None


def test_ranking_prefers_observed_success_then_catalog_order() -> None:
    a = Candidate("restart", 0)
    b = Candidate("scale", 1)
    assert [c.action for c in rank([b, a])] == ["restart", "scale"]
    a_bad = Candidate("restart", 0, service=Evidence(1, 4, 5, 1))
    b_good = Candidate("scale", 1, service=Evidence(4, 1, 5, 4))
    ranked = rank([a_bad, b_good], strategy="greedy")
    assert [c.action for c in ranked] == ["scale", "restart"]
    assert rank([a])[0].score == 0.5
    assert ranked[0].score == pytest.approx(5 / 7)


def test_state_machine() -> None:
    assert IncidentStatus.RESOLVED in TRANSITIONS[IncidentStatus.ESCALATED]
    assert not TRANSITIONS[IncidentStatus.RESOLVED]
    assert sources_of(IncidentStatus.VERIFYING) == {IncidentStatus.REMEDIATING}
    assert IncidentStatus.RESOLVED not in sources_of(IncidentStatus.OPEN)


def test_severity() -> None:
    assert classify(IncidentType.UNREACHABLE) is Severity.HIGH
    assert classify(IncidentType.UNREACHABLE, ["critical"]) is Severity.CRITICAL
    assert classify(IncidentType.HIGH_CPU, ["api"]) is Severity.MEDIUM


def test_secret_box_round_trip_and_wrong_key() -> None:
    box = SecretBox("one-key")
    token = box.encrypt("webhook-secret")
    assert "webhook-secret" not in token
    assert box.decrypt(token, what="s") == "webhook-secret"
    with pytest.raises(ConfigError, match="SECRET_KEY differs"):
        SecretBox("another-key").decrypt(token, what="s")


def test_key_store() -> None:
    now = [1000.0]
    store = KeyStore(clock=lambda: now[0])
    store.replace(
        [
            StoredKey(hash_key("k1"), Principal("t1", "first", 1, "read")),
            StoredKey(hash_key("k2"), Principal("t2", "second", 2), expires_at=1005.0),
        ]
    )
    assert store.authenticate("k1").tenant_id == "t1"  # type: ignore[union-attr]
    assert store.authenticate("k2").key_name == "second"  # type: ignore[union-attr]
    assert store.authenticate("k3") is None
    assert store.authenticate("") is None
    assert store.authenticate(None) is None
    now[0] = 1005.0  # expiry is checked at use, without a reload
    assert store.authenticate("k2") is None
    assert store.authenticate("k1").scope == "read"  # type: ignore[union-attr]
    # an open live feed asks whether its key still holds
    assert store.still_valid(Principal("t1", "first", 1, "read"))
    assert not store.still_valid(Principal("t2", "second", 2))  # expired
    store.replace([])
    assert not store.still_valid(Principal("t1", "first", 1, "read"))  # revoked


def test_key_uses_are_stored_at_most_once_a_minute() -> None:
    now = [1000.0]
    store = KeyStore(clock=lambda: now[0])
    store.replace([StoredKey(hash_key("k1"), Principal("t1", "first", 1, "read"))])
    assert store.take_used() == {}
    store.authenticate("k1")
    assert store.take_used() == {1: 1000.0}
    now[0] = 1030.0
    store.authenticate("k1")
    assert store.take_used() == {}  # within the minute: not written again
    now[0] = 1061.0
    store.authenticate("k1")
    assert store.take_used() == {1: 1061.0}


def test_scopes_allow_the_smaller_ones() -> None:
    for scope, needed in [("admin", "write"), ("write", "read"), ("read", "read")]:
        assert allows(scope, needed)
    assert not allows("read", "write")
    assert not allows("write", "admin")


def test_history_ring() -> None:
    history = History(size=3)
    for i in range(5):
        history.append(Sample(KEY, float(i), i % 2 == 0, float(10 * i)))
    assert history.points() == [(2.0, 20.0, True), (3.0, 30.0, False), (4.0, 40.0, True)]
    assert len(history) == 3


def test_rollups_fold_minutes() -> None:
    buffer = RollupBuffer()
    for at, ok, ms in [(60.0, True, 10.0), (70.0, False, 30.0), (125.0, True, 5.0)]:
        sample = Sample(KEY, at, ok, ms)
        sample.memory = 50.0 if ok else None
        sample.latency_ms = 200.0 if ok else 900.0  # a failed probe's figures do not count
        buffer.add(sample)
    rows = buffer.drain(now=130.0)
    assert len(rows) == 1
    row = rows[0]
    assert row["minute"] == datetime.fromtimestamp(60, UTC)
    assert (row["probes"], row["ok"], row["response_ms_sum"], row["response_ms_max"]) == (
        2,
        1,
        40.0,
        30.0,
    )
    assert row["latency_ms_max"] == 200.0
    assert buffer.drain(now=130.0) == []
    assert [r["probes"] for r in buffer.drain(now=130.0, include_current=True)] == [1]


def test_logs_redact_secret_keys() -> None:
    event = redact_secrets(None, "info", {"secret": "x", "api_key": "y", "nested": {"token": "z"}})
    assert event == {"secret": REDACTED, "api_key": REDACTED, "nested": {"token": REDACTED}}
