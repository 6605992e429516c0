"""Learning state in the database, on SQLite and PostgreSQL: the decider reads it, it survives
restarts, it resets per service, and 10,000 outcomes of it reload in under a second."""

from __future__ import annotations

import random
import time
from typing import Any

import numpy as np
import pytest

from selfheal.decisions.engine import Decider
from selfheal.decisions.policy import resolve as resolve_policies
from selfheal.learning.outcomes import learn, load_state
from selfheal.learning.simulation import SimulatedFleet, switch_point
from selfheal.services import build_spec
from selfheal.storage.db import Database
from selfheal.storage.repositories import catalog as catalog_repo
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT, ServiceKey
from tests.conftest import api_client


async def _database(url: str) -> Database:
    db = Database(url)
    await db.migrate()
    async with db.session() as session:
        await tenants_repo.ensure_tenant(session=session, tenant_id=DEFAULT_TENANT)
        await catalog_repo.replace_catalog(
            session=session,
            tenant_id=DEFAULT_TENANT,
            entries={"high_memory": [("fix_a", {}), ("fix_b", {})]},
        )
    return db


async def test_simulated_fleet_through_the_decider(database_url: str, make_settings: Any) -> None:
    """The ranking simulation of issue 5, through the real decider and storage (one seed;
    tests/unit/test_ranking.py checks the frequencies over many seeds)."""
    settings = make_settings(database_url)
    db = await _database(database_url)
    spec = build_spec(
        settings,
        key=ServiceKey(DEFAULT_TENANT, "svc"),
        name="svc",
        health_url="http://127.0.0.1:9/health",
        webhook_url="http://127.0.0.1:9/webhook",
        secret="a-long-secret",
        cooldown=0,
    )
    decider = Decider(db, resolve_policies(settings), rng=np.random.default_rng(7))
    outcomes = random.Random(7)
    first: list[str] = []
    try:
        for rates in [{"fix_a": 0.2, "fix_b": 0.9}] * 40 + [{"fix_a": 0.2, "fix_b": 0.0}] * 30:
            tried: dict[str, int] = {}
            while len(tried) < 2:
                decision = await decider.decide(spec, "high_memory", tried)
                assert decision.action is not None
                if not tried:
                    first.append(decision.action)
                    assert {c["action"] for c in decision.considered} <= {"fix_a", "fix_b"}
                    assert "interval_90" in decision.considered[0]
                tried[decision.action] = 1
                ok = outcomes.random() < rates[decision.action]
                async with db.session() as session:
                    await learn(
                        session,
                        tenant_id=DEFAULT_TENANT,
                        service_id="svc",
                        incident_type="high_memory",
                        action=decision.action,
                        recovered=ok,
                        seconds=4.0 if ok else None,
                    )
                if ok:
                    break
        assert first[30:40].count("fix_b") >= 9
        switched = switch_point(first[40:], "fix_b")
        assert switched is not None
        assert switched <= 15
        # the fleet row is the sum of the (single) service row
        async with db.session() as session:
            rows = await learning_repo.all_arms(session=session, tenant_id=DEFAULT_TENANT)
        by = {(r.scope, r.action): r for r in rows}
        for action in ("fix_a", "fix_b"):
            assert by[("*", action)].successes == pytest.approx(by[("svc", action)].successes)
            assert by[("*", action)].runs == by[("svc", action)].runs
    finally:
        await db.close()


async def test_learning_state_of_10000_outcomes_reloads_in_under_a_second(
    database_url: str,
) -> None:
    """Must show: the learning state after 10,000 outcomes reloads after a restart in < 1 s."""
    sim = SimulatedFleet(("restart", "rollback", "clear_cache"), seed=1)
    rng = random.Random(1)
    services = [f"svc-{i:03d}" for i in range(100)]
    types = ["high_memory", "high_latency", "http_error", "timeout"]
    for _ in range(10_000):
        sim.record(rng.choice(services), rng.choice(sim.actions), rng.random() < 0.6, 3.0)
    db = await _database(database_url)
    try:
        async with db.session() as session:
            for (service, action), state in sim.service.items():
                for kind in types:
                    await learning_repo.save_arm(
                        session=session,
                        row={
                            "tenant_id": DEFAULT_TENANT,
                            "scope": service,
                            "incident_type": kind,
                            "action": action,
                            "successes": state.evidence.successes,
                            "failures": state.evidence.failures,
                            "runs": state.evidence.runs,
                            "recovered": state.evidence.recovered,
                            "recovery_weight": state.evidence.recovery_weight,
                            "recovery_sum": state.evidence.recovery_sum,
                            "recovery_sq": state.evidence.recovery_sq,
                            "recent": state.recent,
                            "changes": 0,
                        },
                    )
    finally:
        await db.close()

    started = time.perf_counter()  # a restarted process: new engine, migrations check, load
    db = Database(database_url)
    try:
        await db.migrate()
        state = await load_state(db, tenant_id=DEFAULT_TENANT)
        elapsed = time.perf_counter() - started
    finally:
        await db.close()
    assert len(state) == 100 * 3 * 4
    assert sum(f.evidence.runs for f in state) == 4 * 10_000
    one = next(f for f in state if f.scope == "svc-007" and f.action == "rollback")
    assert one.evidence.successes == pytest.approx(
        sim.service[("svc-007", "rollback")].evidence.successes
    )
    print(f"learning state of 10,000 outcomes reloaded in {elapsed:.3f}s")
    assert elapsed < 1.0, f"reload took {elapsed:.3f}s"


async def test_learning_survives_a_restart_and_resets_per_service(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, CHECK_INTERVAL=5.0)
    async with FakeService(service_id="shop") as service:
        for round_ in range(2):
            async with AgentServer(settings) as server:
                client = api_client(server.url)
                await client.post(
                    "/api/services/register",
                    json={"service_id": "shop", "health_url": service.health_url},
                )
                await client.post(
                    "/api/services/register",
                    json={"service_id": "cart", "health_url": service.health_url},
                )
                if round_ == 0:
                    async with server.agent.db.session() as session:
                        for i in range(12):
                            for svc in ("shop", "cart"):
                                await learn(
                                    session,
                                    tenant_id=DEFAULT_TENANT,
                                    service_id=svc,
                                    incident_type="high_memory",
                                    action="restart",
                                    recovered=i % 4 != 0,
                                    seconds=2.0,
                                )
                body = (await client.get("/api/services/shop/learning")).json()
                assert [f["action"] for f in body["service"]] == ["restart"]
                assert body["service"][0]["runs"] == 12
                assert body["fleet"][0]["runs"] == 24  # after the restart too
                await client.aclose()
        async with AgentServer(settings) as server:
            client = api_client(server.url)
            reset = await client.delete("/api/services/shop/learning")
            assert reset.status_code == 200, reset.text
            assert reset.json()["fixes_forgotten"] == 1
            body = (await client.get("/api/services/shop/learning")).json()
            assert body["service"] == []
            assert body["fleet"][0]["runs"] == 12  # only cart's share is left
            cart = (await client.get("/api/services/cart/learning")).json()
            assert cart["service"][0]["successes"] == pytest.approx(body["fleet"][0]["successes"])
            assert (await client.delete("/api/services/nope/learning")).status_code == 404
            await client.aclose()


async def test_recorded_outcomes_feed_the_service_and_fleet_rows(database_url: str) -> None:
    from selfheal.learning.outcomes import OutcomeRecorder
    from selfheal.storage.repositories import actions as actions_repo
    from selfheal.storage.repositories import incidents as incidents_repo

    db = await _database(database_url)
    recorder = OutcomeRecorder(db, None, discount=0.5)
    try:
        for i, ok in enumerate([True, False, True]):
            async with db.session() as session:
                incident, _ = await incidents_repo.open_incident(
                    session=session,
                    tenant_id=DEFAULT_TENANT,
                    service_id="shop",
                    type=f"high_memory_{i}",
                    severity="medium",
                    summary="",
                    details={},
                )
                action = await actions_repo.create_action(
                    session=session,
                    tenant_id=DEFAULT_TENANT,
                    incident_id=incident.id,
                    service_id="shop",
                    incident_type="high_memory",
                    action="fix_a",
                    executor="webhook",
                    params={},
                    idempotency_key=f"key-{i}",
                    decision={},
                )
                assert action is not None
            await recorder.record(
                tenant_id=DEFAULT_TENANT,
                action_id=action.id,
                incident_type="high_memory",
                action="fix_a",
                recovered=ok,
                seconds=2.0 if ok else None,
            )
        state = {(f.scope, f.action): f for f in await load_state(db, tenant_id=DEFAULT_TENANT)}
        own = state[("shop", "fix_a")]
        assert own.recent == "101"
        assert own.evidence.successes == pytest.approx(0.25 + 1)  # discount 0.5
        assert own.evidence.failures == pytest.approx(0.5)
        assert (own.evidence.runs, own.evidence.recovered) == (3, 2)
        assert state[("*", "fix_a")].evidence.successes == pytest.approx(1.25)
    finally:
        await db.close()
