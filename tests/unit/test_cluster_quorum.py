"""Quorum before "down" (``confirm_from``): replicas wired to each other in memory, each
with its own view of the service (a probe that answers up or down)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from selfheal.checks.sample import Sample
from selfheal.cluster.ownership import weight
from selfheal.cluster.quorum import Quorum, Verdict
from selfheal.detectors.monitor import Confirmed
from selfheal.detectors.thresholds import Symptom
from selfheal.events import EventBus
from selfheal.runtime.signals import SignalWorker
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import IncidentType, ServiceKey

KEY = ServiceKey("default", "api")
MEMBERS = ("a", "b", "c")


def _spec(make_settings: Any, confirm_from: int) -> ServiceSpec:
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    return build_spec(
        settings,
        key=KEY,
        name=None,
        health_url="http://127.0.0.1:9/",
        timeout=0.2,
        confirm_from=confirm_from,
    )


def _cluster(
    spec: ServiceSpec, sees_down: dict[str, bool], live: tuple[str, ...] = MEMBERS
) -> dict[str, Quorum]:
    """One Quorum per member; a message sent is delivered to every other live one."""
    nodes: dict[str, Quorum] = {}

    def sender(me: str) -> Any:
        def send(message: dict[str, Any]) -> bool:
            loop = asyncio.get_running_loop()
            for other, node in nodes.items():
                if other != me and other in live:
                    loop.call_soon(node.on_message, dict(message))
            return True

        return send

    def prober(me: str) -> Any:
        async def probe(_spec: ServiceSpec) -> Sample:
            down = sees_down[me]
            return Sample(
                KEY, at=0.0, ok=not down, response_ms=1.0, status_code=500 if down else 200
            )

        return probe

    for me in MEMBERS:
        nodes[me] = Quorum(
            me=me,
            members=lambda: MEMBERS,
            send=sender(me),
            spec_of=lambda key: spec if key == KEY else None,
            probe=prober(me),
        )
    return nodes


async def test_a_peer_that_agrees_confirms(make_settings: Any) -> None:
    spec = _spec(make_settings, 2)
    nodes = _cluster(spec, {"a": True, "b": True, "c": True})
    verdict = await nodes["a"].confirm(spec, IncidentType.HTTP_ERROR)
    assert verdict.open
    assert verdict.confirmed_by == 1
    assert "confirmed by 1" in verdict.reason


async def test_a_peer_that_sees_it_healthy_stops_the_incident(make_settings: Any) -> None:
    spec = _spec(make_settings, 3)
    nodes = _cluster(spec, {"a": True, "b": False, "c": True})
    verdict = await nodes["a"].confirm(spec, IncidentType.HTTP_ERROR)
    assert not verdict.open
    assert "healthy" in verdict.reason


async def test_the_peers_asked_are_the_next_owners(make_settings: Any) -> None:
    spec = _spec(make_settings, 2)
    nodes = _cluster(spec, {"a": True, "b": True, "c": True})
    for me, node in nodes.items():
        (peer,) = node.peers(KEY, 1)
        assert peer != me
        # the same ranking every replica computes: the highest weight but the asker
        ranked = sorted(MEMBERS, key=lambda m: (weight(m, KEY), m), reverse=True)
        assert peer == next(m for m in ranked if m != me)


async def test_no_answer_or_too_few_peers_opens_anyway(make_settings: Any) -> None:
    spec = _spec(make_settings, 2)
    silent = _cluster(spec, {"a": True, "b": True, "c": True}, live=("a",))
    verdict = await silent["a"].confirm(spec, IncidentType.HTTP_ERROR)
    assert verdict.open
    assert "0 of 1 answered" in verdict.reason
    spec4 = _spec(make_settings, 4)  # three peers needed, two exist
    nodes = _cluster(spec4, {"a": True, "b": True, "c": True})
    verdict = await nodes["a"].confirm(spec4, IncidentType.HTTP_ERROR)
    assert verdict.open
    assert "2 of 3 peers live" in verdict.reason


class _Gate:
    """A cluster whose other replicas answer with a fixed verdict."""

    def __init__(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.asked: list[ServiceKey] = []

    def needs_quorum(self, spec: ServiceSpec) -> bool:
        return spec.confirm_from > 1

    async def confirm(self, spec: ServiceSpec, kind: IncidentType) -> Verdict:
        self.asked.append(spec.key)
        return self.verdict


class _Incidents:
    def __init__(self) -> None:
        self.opened: list[str] = []
        self.notes: list[str] = []

    async def open(self, spec: ServiceSpec, symptom: Symptom, *a: Any, **k: Any) -> Any:
        self.opened.append(spec.service_id)
        return SimpleNamespace(id=1, tenant_id=spec.tenant_id), True

    async def note(
        self, tenant_id: str, incident_id: int, kind: str, message: str, data: Any
    ) -> None:
        self.notes.append(message)


async def _signal_through(
    make_settings: Any, verdict: Verdict
) -> tuple[_Incidents, list[Any], list[Any]]:
    spec = _spec(make_settings, 2)
    incidents, healed, forgotten = _Incidents(), [], []
    queue: asyncio.Queue[Any] = asyncio.Queue()
    worker = SignalWorker(
        queue,
        incidents=incidents,  # type: ignore[arg-type]
        start_healing=healed.append,
        spec_of=lambda key: spec,
        bus=EventBus(),
        record_status=lambda signal: None,
        quorum=_Gate(verdict),
        forget_symptom=lambda key, kind: forgotten.append((key, kind)),
    )
    symptom = Symptom(IncidentType.HTTP_ERROR, "HTTP 500")
    sample = Sample(KEY, at=0.0, ok=False, response_ms=1.0, status_code=500)
    await worker._handle(Confirmed(spec, symptom, sample))
    for _ in range(20):
        await asyncio.sleep(0)
    return incidents, healed, forgotten


async def test_the_signal_worker_opens_only_what_the_quorum_confirms(make_settings: Any) -> None:
    incidents, healed, forgotten = await _signal_through(
        make_settings, Verdict(False, 0, "another replica finds the service healthy")
    )
    assert incidents.opened == []
    assert healed == []
    assert forgotten == [(KEY, IncidentType.HTTP_ERROR)]  # the next failures ask again

    incidents, healed, forgotten = await _signal_through(
        make_settings, Verdict(True, 1, "confirmed by 1 other replica(s)")
    )
    assert incidents.opened == ["api"]
    assert incidents.notes == ["confirmed by 1 other replica(s)"]
    assert len(healed) == 1
    assert forgotten == []
