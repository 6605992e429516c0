"""Rendezvous ownership, and the scheduler probing only what this replica owns."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from selfheal.actions.runner import ActionRunner
from selfheal.checks.sample import Sample
from selfheal.checks.scheduler import Scheduler
from selfheal.cluster.membership import Membership
from selfheal.cluster.ownership import Ownership, owner
from selfheal.decisions.engine import Decision
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.services import ServiceSpec, build_spec
from selfheal.storage.db import Database
from selfheal.types import ServiceKey

KEYS = [ServiceKey("default", f"svc-{i}") for i in range(3000)]


def test_every_service_has_one_owner_and_the_shares_are_even() -> None:
    members = ["a", "b", "c"]
    shares = Counter(owner(members, key) for key in KEYS)
    assert set(shares) == set(members)
    assert all(900 <= n <= 1100 for n in shares.values()), shares
    # every replica, whatever order it lists the members in, picks the same owner
    assert all(owner(members, k) == owner(list(reversed(members)), k) for k in KEYS)


def test_a_member_leaving_moves_only_its_own_services() -> None:
    before = {key: owner(["a", "b", "c"], key) for key in KEYS}
    after = {key: owner(["a", "c"], key) for key in KEYS}
    moved = [key for key in KEYS if before[key] != after[key]]
    assert moved
    assert all(before[key] == "b" for key in moved)
    # and one joining takes about a quarter from each
    joined = {key: owner(["a", "b", "c", "d"], key) for key in KEYS}
    assert all(joined[k] in (before[k], "d") for k in KEYS)


def test_alone_or_fenced() -> None:
    me = Ownership("a")
    assert all(me.owns(k) for k in KEYS)  # alone at start: a single agent owns everything
    assert me.update(["b", "a"])
    assert not me.update(["a", "b"])  # the same view, in another order
    assert 0 < sum(me.owns(k) for k in KEYS) < len(KEYS)
    me.update([])  # fenced: owns nothing
    assert not any(me.owns(k) for k in KEYS)


def _spec(make_settings: Any, key: ServiceKey) -> ServiceSpec:
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    return build_spec(settings, key=key, name=None, health_url="http://127.0.0.1:9/", interval=0.1)


async def test_the_scheduler_probes_only_what_it_owns(make_settings: Any) -> None:
    probed: Counter[ServiceKey] = Counter()

    async def probe(spec: ServiceSpec) -> Sample:
        probed[spec.key] += 1
        return Sample(spec.key, at=0.0, ok=True, response_ms=1.0)

    scheduler = Scheduler(probe=probe, on_sample=lambda spec, sample: spec.interval)
    keys = KEYS[:20]
    mine = set(keys[:5])
    scheduler.reassign(lambda key: key in mine)
    for key in keys:
        scheduler.schedule(_spec(make_settings, key))
    try:
        assert len(scheduler) == 20  # every spec is known (the API shows them all)
        assert scheduler.probing() == 5
        await asyncio.sleep(0.35)
        assert set(probed) == mine
        # ownership moves: the others are taken over promptly, these five stop
        scheduler.reassign(lambda key: key not in mine)
        assert scheduler.probing() == 15
        probed.clear()
        await asyncio.sleep(0.35)
        assert set(probed) == set(keys) - mine
    finally:
        await scheduler.stop()


def test_may_act_only_under_a_lease_or_alone(tmp_path: Path) -> None:
    now = [0.0]
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")  # never reached: no tick here
    member = Membership(db, on_view=lambda v: None, clock=lambda: now[0], member_id="a")
    assert member.may_act()  # alone, before any heartbeat: a single agent acts
    member.view = ("a", "b")
    assert not member.may_act()  # peers and no lease: another replica may own the work
    member._valid_until = 1.0
    assert member.may_act()
    now[0] = 1.5
    assert not member.may_act()
    member.view, member.fenced = ("a",), True
    assert not member.may_act()


async def test_the_action_runner_starts_nothing_while_fenced(
    make_settings: Any, tmp_path: Path
) -> None:
    called: list[str] = []

    class Recording:
        async def execute(self, request: Any) -> Any:
            called.append(request.action)

    runner = ActionRunner(
        db=Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"),  # refused before any write
        bus=EventBus(),
        executors={"webhook": Recording()},  # type: ignore[dict-item]
        metrics=None,
        default_timeouts={},
        may_act=lambda: False,
    )
    decision = Decision(reason="test", confidence=1.0, action="restart", executor="webhook")
    spec = _spec(make_settings, KEYS[0])
    with pytest.raises(StorageError, match="lease"):
        await runner.run(
            spec=spec, incident_id=1, incident_type="http_error", decision=decision, attempt=1
        )
    assert called == []
