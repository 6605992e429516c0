"""At most once across replicas: one action per incident attempt, claims, fencing tokens.

Real databases: the idempotency-key test runs on SQLite and PostgreSQL; the
claims and fencing need PostgreSQL's clock and ``cluster_members``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from selfheal.actions.base import ActionRequest, ActionResult
from selfheal.actions.runner import ActionRunner
from selfheal.cluster.fencing import Fence
from selfheal.cluster.membership import Membership
from selfheal.decisions.engine import Decision
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.services import ServiceSpec, build_spec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories.tenants import ensure_tenant
from selfheal.types import DEFAULT_TENANT, ActionStatus, ServiceKey
from tests.conftest import _create_postgres_database, _drop_postgres_database

LEASE = 1.0


class Recording:
    """An executor that remembers what it was asked to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.calls.append((request.action, request.incident_id))
        return ActionResult(True, "done")


def _decision(action: str) -> Decision:
    return Decision(reason="test", confidence=1.0, action=action, executor="webhook")


def _spec(make_settings: Any) -> ServiceSpec:
    settings = make_settings("sqlite+aiosqlite:///:memory:")
    key = ServiceKey(DEFAULT_TENANT, "api")
    return build_spec(settings, key=key, name=None, health_url="http://127.0.0.1:9/health")


async def _incident(db: Database) -> int:
    async with db.session() as session:
        await ensure_tenant(session=session, tenant_id=DEFAULT_TENANT)
        row, _ = await incidents_repo.open_incident(
            session=session,
            tenant_id=DEFAULT_TENANT,
            service_id="api",
            type="http_error",
            severity="high",
            summary="down",
            details={},
        )
    return row.id


def _runner(db: Database, executor: Recording, fence: Fence | None = None) -> ActionRunner:
    return ActionRunner(
        db=db,
        bus=EventBus(),
        executors={"webhook": executor},  # type: ignore[dict-item]
        metrics=None,
        default_timeouts={},
        fence=fence,
    )


async def test_one_action_per_attempt_whatever_the_choice(
    database_url: str, make_settings: Any
) -> None:
    """Two deciders that chose different fixes for one attempt: the database runs one."""
    db = Database(database_url)
    await db.migrate()
    try:
        incident_id = await _incident(db)
        executor = Recording()
        spec = _spec(make_settings)
        first, second = _runner(db, executor), _runner(db, executor)
        runs = await asyncio.gather(
            first.run(
                spec=spec,
                incident_id=incident_id,
                incident_type="http_error",
                decision=_decision("restart"),
                attempt=1,
            ),
            second.run(
                spec=spec,
                incident_id=incident_id,
                incident_type="http_error",
                decision=_decision("clear_cache"),
                attempt=1,
            ),
        )
        assert sum(run is not None for run in runs) == 1
        assert len(executor.calls) == 1
        # the next attempt is a new key
        again = await first.run(
            spec=spec,
            incident_id=incident_id,
            incident_type="http_error",
            decision=_decision("clear_cache"),
            attempt=2,
        )
        assert again is not None
        assert len(executor.calls) == 2
    finally:
        await db.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def test_a_late_write_from_a_superseded_lease_is_refused(
    postgres_url: str, make_settings: Any
) -> None:
    db = Database(postgres_url)
    await db.migrate()
    a = Membership(db, on_view=lambda v: None, lease=LEASE, beat=0.2, member_id="a")
    b = Membership(db, on_view=lambda v: None, lease=LEASE, beat=0.2, member_id="b")
    fence_a, fence_b = Fence(db, a), Fence(db, b)
    executor = Recording()
    spec = _spec(make_settings)
    try:
        await a.tick()
        await b.tick()
        incident_id = await _incident(db)
        lease_a = await fence_a.claim(DEFAULT_TENANT, incident_id)
        assert lease_a is not None
        assert lease_a.token == a.token > 0
        # a live holder: nobody else gets the heal loop
        assert await fence_b.claim(DEFAULT_TENANT, incident_id) is None
        run = await _runner(db, executor, fence_a).run(
            spec=spec,
            incident_id=incident_id,
            incident_type="http_error",
            decision=_decision("restart"),
            attempt=1,
            lease=lease_a,
        )
        assert run is not None
        async with db.session() as session:
            rows = await actions_repo.actions_for_incident(
                session=session, tenant_id=DEFAULT_TENANT, incident_id=incident_id
            )
        assert [(r.member_id, r.fence_token) for r in rows] == [("a", lease_a.token)]

        # a is cut off (no heartbeat): once its row expired, b takes the incident over
        await asyncio.sleep(LEASE + 0.2)
        await b.tick()
        lease_b = await fence_b.claim(DEFAULT_TENANT, incident_id)
        assert lease_b is not None
        # a's late write is refused in the transaction, and nothing runs
        with pytest.raises(StorageError, match="claim"):
            await _runner(db, executor, fence_a).run(
                spec=spec,
                incident_id=incident_id,
                incident_type="http_error",
                decision=_decision("clear_cache"),
                attempt=2,
                lease=lease_a,
            )
        # a rejoins: a new token, and still not the incident's healer
        old = a.token
        await a.tick()
        assert a.token != old
        assert await fence_a.claim(DEFAULT_TENANT, incident_id) is None
        with pytest.raises(StorageError):
            await _runner(db, executor, fence_a).run(
                spec=spec,
                incident_id=incident_id,
                incident_type="http_error",
                decision=_decision("clear_cache"),
                attempt=2,
                lease=lease_a,
            )
        assert len(executor.calls) == 1
        # b, the holder, acts; its row carries its own token
        assert await _runner(db, executor, fence_b).run(
            spec=spec,
            incident_id=incident_id,
            incident_type="http_error",
            decision=_decision("clear_cache"),
            attempt=2,
            lease=lease_b,
        )
        assert len(executor.calls) == 2
        # b released it (its service moved): a live replica may claim it again
        await fence_b.release(DEFAULT_TENANT, incident_id, lease_b)
        await a.tick()
        orphans = await fence_a.orphans()
        assert [i for i, _ in orphans] == [incident_id]
        assert await fence_a.claim(DEFAULT_TENANT, incident_id) is not None
    finally:
        await db.close()


async def test_the_first_ending_of_an_action_wins(database_url: str) -> None:
    """A takeover's "interrupted" and the starter's late result: only the first is kept."""
    db = Database(database_url)
    await db.migrate()
    try:
        incident_id = await _incident(db)
        async with db.session() as session:
            row = await actions_repo.create_action(
                session=session,
                tenant_id=DEFAULT_TENANT,
                incident_id=incident_id,
                service_id="api",
                incident_type="http_error",
                action="restart",
                executor="webhook",
                params={},
                idempotency_key=f"{DEFAULT_TENANT}:{incident_id}:1",
                decision={},
            )
        assert row is not None
        async with db.session() as session:
            assert await actions_repo.finish_action(
                session=session,
                tenant_id=DEFAULT_TENANT,
                action_id=row.id,
                status=ActionStatus.INTERRUPTED.value,
                result={},
            )
            assert not await actions_repo.finish_action(
                session=session,
                tenant_id=DEFAULT_TENANT,
                action_id=row.id,
                status=ActionStatus.SUCCEEDED.value,
                result={},
            )
            rows = await actions_repo.actions_for_incident(
                session=session, tenant_id=DEFAULT_TENANT, incident_id=incident_id
            )
        assert [r.status for r in rows] == ["interrupted"]
    finally:
        await db.close()
