"""Repositories on real SQLite and PostgreSQL: dedupe, compare-and-set, idempotency, batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from selfheal.storage.db import Database
from selfheal.storage.repositories import actions, catalog, incidents, samples, services, tenants
from selfheal.storage.tables import SampleRollup, Service


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    async with database.session() as session:
        await tenants.ensure_tenant(session=session, tenant_id="a")
        await tenants.ensure_tenant(session=session, tenant_id="b")
    yield database
    await database.close()


async def open_one(db: Database, tenant: str = "a", kind: str = "timeout") -> tuple[int, bool]:
    async with db.session() as session:
        row, created = await incidents.open_incident(
            session=session,
            tenant_id=tenant,
            service_id="svc",
            type=kind,
            severity="high",
            summary="s",
            details={},
        )
        return row.id, created


async def test_one_unresolved_incident_per_fingerprint_even_when_racing(db: Database) -> None:
    results = await asyncio.gather(*(open_one(db) for _ in range(5)))
    ids = {incident_id for incident_id, _ in results}
    assert len(ids) == 1
    assert sum(created for _, created in results) == 1
    other_type, created = await open_one(db, kind="http_error")
    assert created
    assert other_type not in ids
    other_tenant, created = await open_one(db, tenant="b")
    assert created
    assert other_tenant not in ids


async def test_transition_is_compare_and_set(db: Database) -> None:
    incident_id, _ = await open_one(db)
    async with db.session() as session:
        assert await incidents.transition(
            session=session,
            tenant_id="a",
            incident_id=incident_id,
            to="remediating",
            allowed_from=["open"],
        )
        assert not await incidents.transition(
            session=session,
            tenant_id="a",
            incident_id=incident_id,
            to="remediating",
            allowed_from=["open"],
        )
        # another tenant cannot move it
        assert not await incidents.transition(
            session=session,
            tenant_id="b",
            incident_id=incident_id,
            to="resolved",
            allowed_from=["remediating"],
        )
        assert await incidents.transition(
            session=session,
            tenant_id="a",
            incident_id=incident_id,
            to="resolved",
            allowed_from=["remediating"],
            resolution="fixed",
        )
        row = await incidents.get_incident(session=session, tenant_id="a", incident_id=incident_id)
        assert row is not None
        assert row.resolved_at is not None
        assert row.resolved_at.tzinfo is not None
    again, created = await open_one(db)
    assert created
    assert again != incident_id


async def test_timeline_is_ordered_and_tenant_scoped(db: Database) -> None:
    incident_id, _ = await open_one(db)
    async with db.session() as session:
        for kind in ("detected", "decided", "resolved"):
            await incidents.add_event(
                session=session, tenant_id="a", incident_id=incident_id, kind=kind, message=kind
            )
    async with db.session() as session:
        steps = await incidents.timeline(session=session, tenant_id="a", incident_id=incident_id)
        assert [s.kind for s in steps] == ["detected", "decided", "resolved"]
        assert (
            await incidents.timeline(session=session, tenant_id="b", incident_id=incident_id) == []
        )
        assert (
            await incidents.get_incident(session=session, tenant_id="b", incident_id=incident_id)
            is None
        )


async def test_action_idempotency_key_refuses_a_second_run(db: Database) -> None:
    incident_id, _ = await open_one(db)

    async def create() -> object:
        async with db.session() as session:
            return await actions.create_action(
                session=session,
                tenant_id="a",
                incident_id=incident_id,
                service_id="svc",
                incident_type="timeout",
                action="restart",
                executor="webhook",
                params={},
                idempotency_key="a:1:1:restart",
                decision={},
            )

    first, second = await create(), await create()
    assert first is not None
    assert second is None
    async with db.session() as session:
        last = await actions.last_run_at(
            session=session, tenant_id="a", service_id="svc", action="restart"
        )
        assert last is not None
        assert last.tzinfo is not None
        assert datetime.now(UTC) - last < timedelta(minutes=1)
        assert (
            await actions.last_run_at(
                session=session, tenant_id="b", service_id="svc", action="restart"
            )
            is None
        )


async def test_catalog_replace_keeps_counters_of_kept_fixes(db: Database) -> None:
    async with db.session() as session:
        await catalog.replace_catalog(
            session=session, tenant_id="a", entries={"timeout": [("restart", {}), ("scale", {})]}
        )
        await catalog.count_outcome(
            session=session,
            tenant_id="a",
            incident_type="timeout",
            action="restart",
            success=True,
            recovery_seconds=4.0,
        )
        await catalog.count_outcome(
            session=session,
            tenant_id="a",
            incident_type="timeout",
            action="restart",
            success=False,
            recovery_seconds=None,
        )
    async with db.session() as session:
        await catalog.replace_catalog(
            session=session,
            tenant_id="a",
            entries={"timeout": [("scale", {"n": 2}), ("restart", {})]},
        )
    async with db.session() as session:
        rows = await catalog.catalog_entries(
            session=session, tenant_id="a", incident_type="timeout"
        )
        assert [(r.action, r.position, r.successes, r.failures) for r in rows] == [
            ("scale", 0, 0, 0),
            ("restart", 1, 1, 1),
        ]
        assert rows[1].recovery_seconds_total == 4.0
        assert not await catalog.has_catalog(session=session, tenant_id="b")


async def test_rollups_merge_and_statuses_batch(db: Database) -> None:
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    row = {
        "tenant_id": "a",
        "service_id": "svc",
        "minute": minute,
        "probes": 2,
        "ok": 1,
        "response_ms_sum": 30.0,
        "response_ms_max": 20.0,
        "cpu_max": None,
        "memory_max": 50.0,
        "error_rate_max": 0.1,
    }
    async with db.session() as session:
        await samples.merge_rollups(session=session, rows=[row])
    async with db.session() as session:
        await samples.merge_rollups(
            session=session,
            rows=[row | {"probes": 3, "ok": 3, "response_ms_max": 5.0, "cpu_max": 7.0}],
        )
    async with db.session() as session:
        stored = await samples.rollups(
            session=session, tenant_id="a", service_id="svc", since=minute
        )
        assert len(stored) == 1
        got: SampleRollup = stored[0]
        assert (got.probes, got.ok, got.response_ms_max, got.cpu_max, got.memory_max) == (
            5,
            4,
            20.0,
            7.0,
            50.0,
        )
    async with db.session() as session:
        for i in range(3):
            await services.upsert_service(
                session=session,
                tenant_id="a",
                service_id=f"s{i}",
                values={"name": f"s{i}", "health_url": "http://127.0.0.1:1/h"},
            )
    async with db.session() as session:
        await services.set_statuses(
            session=session,
            rows=[
                {"tenant_id": "a", "service_id": f"s{i}", "status": "down", "at": minute}
                for i in range(2)
            ],
        )
    async with db.session() as session:
        rows: list[Service] = list(await services.list_services(session=session, tenant_id="a"))
        assert [r.status for r in rows] == ["down", "down", "unknown"]
        assert await services.list_services(session=session, tenant_id="b") == []


async def test_api_keys_are_stored_hashed(db: Database) -> None:
    async with db.session() as session:
        await tenants.sync_env_keys(
            session=session, tenant_id="a", key_hashes=[tenants.hash_key("k1")]
        )
        await tenants.add_api_key(session=session, tenant_id="c", key="k2", name="cli")
    async with db.session() as session:
        await tenants.ensure_tenant(session=session, tenant_id="a")
    async with db.session() as session:
        stored = {k.key_hash: k.principal for k in await tenants.load_keys(session=session)}
    assert {h: (p.tenant_id, p.key_name, p.scope) for h, p in stored.items()} == {
        tenants.hash_key("k1"): ("a", "API_KEYS[0]", "admin"),
        tenants.hash_key("k2"): ("c", "cli", "admin"),
    }
    assert "k1" not in stored
    async with db.session() as session:
        await tenants.sync_env_keys(session=session, tenant_id="a", key_hashes=[])
        keys = await tenants.load_keys(session=session)
        assert [k.key_hash for k in keys] == [tenants.hash_key("k2")]
