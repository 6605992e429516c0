"""The shared-state messages between replicas, without a database: what is sent, what
a received message changes (controls, approvals, backoff, heartbeat deadlines, feed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from selfheal.checks.heartbeat import HeartbeatWatch
from selfheal.cluster.shared import EVENTS, MAX_PAYLOAD, STATE, SharedState
from selfheal.configfile import BackoffConfig
from selfheal.decisions.controls import Controls
from selfheal.decisions.limits import RestartBackoff
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.storage.db import Database
from selfheal.types import ServiceKey

KEY = ServiceKey("default", "api")


class Listener:
    """Stands in for ``FleetListener.on``."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}

    def on(self, channel: str, handler: Any) -> None:
        self.handlers[channel] = handler


def _shared(
    tmp_path: Path, *, alone: bool = False, owns: bool = True
) -> tuple[SharedState, EventBus, Controls, Listener]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")  # never reached here
    bus, controls = EventBus(), Controls(db)
    shared = SharedState(
        db, me="me", bus=bus, controls=controls, alone=lambda: alone, owns=lambda k: owns
    )
    listener = Listener()
    shared.attach(listener)  # type: ignore[arg-type]
    return shared, bus, controls, listener


def _outbox(shared: SharedState) -> list[tuple[str, dict[str, Any]]]:
    return [(channel, json.loads(payload)) for channel, payload in shared._outbox]


async def test_events_are_forwarded_with_the_sender_and_fleet_events_are_not(
    tmp_path: Path,
) -> None:
    shared, bus, _, _ = _shared(tmp_path)
    bus.publish(ev.INCIDENT_OPENED, "t1", {"id": 7, "service_id": "api"})
    bus.publish(ev.SERVICE_REGISTERED, "t1", {"service_id": "api"})  # each replica's own
    bus.publish(ev.INCIDENT_RESOLVED, "t1", {"id": 7, "service_id": "api"})
    sent = _outbox(shared)
    assert [(c, m.get("y") or m.get("k")) for c, m in sent] == [
        (EVENTS, ev.INCIDENT_OPENED),
        (EVENTS, ev.INCIDENT_RESOLVED),
        (STATE, "resolved"),
    ]
    assert all(m["o"] == "me" for _, m in sent)
    # too large for NOTIFY: not sent, counted
    bus.publish(ev.INCIDENT_UPDATED, "t1", {"blob": "x" * MAX_PAYLOAD})
    assert len(shared._outbox) == 3
    assert shared.too_large == 1


async def test_a_lone_replica_sends_nothing(tmp_path: Path) -> None:
    shared, bus, _, _ = _shared(tmp_path, alone=True)
    bus.publish(ev.INCIDENT_OPENED, "t1", {"id": 1})
    assert not shared._outbox


async def test_remote_events_reach_subscribers_of_their_tenant_only(tmp_path: Path) -> None:
    shared, bus, _, listener = _shared(tmp_path)
    counted: list[ev.Event] = []
    bus.add_listener(counted.append)
    mine, other = bus.subscribe("t1"), bus.subscribe("t2")
    message = {"o": "peer", "t": "t1", "y": ev.INCIDENT_OPENED, "d": {"id": 3}, "a": 5.0}
    listener.handlers[EVENTS](message)
    got = await mine.get(timeout=0.1)
    assert got is not None
    assert (got.type, got.tenant_id, got.data, got.at) == (ev.INCIDENT_OPENED, "t1", {"id": 3}, 5.0)
    assert await other.get(timeout=0.05) is None
    # not to listeners (metrics count their own replica's events), and not sent back
    assert counted == []
    assert not shared._outbox


async def test_approvals_travel_between_replicas(tmp_path: Path) -> None:
    shared, _, controls, listener = _shared(tmp_path)
    controls.await_approval(9, "restart")
    assert _outbox(shared)[-1][1] | {"o": "me"} == {
        "k": "awaiting",
        "i": 9,
        "a": "restart",
        "o": "me",
    }
    # another replica's heal loop waits; a person approves here
    listener.handlers[STATE]({"o": "peer", "k": "awaiting", "i": 4, "a": "scale_up"})
    assert controls.awaiting(4) == "scale_up"
    assert controls.approve(4, "alice") == "scale_up"
    assert _outbox(shared)[-1][1]["k"] == "approved"
    # approved elsewhere for a loop here
    listener.handlers[STATE]({"o": "peer", "k": "approved", "i": 9, "by": "bob"})
    assert controls.approved_by(9) == "bob"
    controls.forget_approval(9)
    assert _outbox(shared)[-1][1] == {"k": "forget", "i": 9, "o": "me"}
    listener.handlers[STATE]({"o": "peer", "k": "forget", "i": 4})
    assert controls.awaiting(4) is None


async def test_backoff_and_heartbeat_deadlines_are_applied(tmp_path: Path) -> None:
    shared, _, _, listener = _shared(tmp_path)
    backoff = RestartBackoff(BackoffConfig(initial=10, max=300), lambda key: None)

    class HealerStub:
        def __init__(self) -> None:
            self.backoff = backoff
            self.resolved_ids: list[int] = []

        def resolved(self, incident_id: int) -> None:
            self.resolved_ids.append(incident_id)

    healer = HealerStub()
    shared.healer = healer  # type: ignore[assignment]
    backoff.publish = shared.share_backoff
    backoff.restarted(KEY)
    channel, told = _outbox(shared)[-1]
    assert (channel, told["k"], told["c"]) == (STATE, "backoff", 1)

    other = RestartBackoff(BackoffConfig(initial=10, max=300), lambda key: None)
    healer.backoff = other
    listener.handlers[STATE](told | {"o": "peer"})
    assert other.restarts_in_a_row(KEY) == 1
    assert 8.0 < other.wait(KEY) <= 11.0

    listener.handlers[STATE]({"o": "peer", "k": "resolved", "i": 12})
    assert healer.resolved_ids == [12]

    watch = HeartbeatWatch(on_silence=lambda key, silence: None)
    shared.heartbeats = watch
    listener.handlers[STATE]({"o": "peer", "k": "beat", "t": "default", "s": "api", "to": 30})
    assert len(watch) == 1
    watch.stop()
