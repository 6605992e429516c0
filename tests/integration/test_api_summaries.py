"""The ``summaries`` rows behind ``GET /api/metrics`` (migration 0012_api_summaries) stay
equal to grouping the whole history, whatever writes the incidents and actions: the
migration's backfill, bulk inserts, the agent's transitions, multi-row updates and
deletes (retention), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import Connection, delete, func, select, update

from selfheal.storage.db import Database, alembic_config
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import stats
from selfheal.storage.tables import Action, Incident
from selfheal.testing import seed_history
from selfheal.types import DEFAULT_TENANT

SERVICES = [f"svc-{n}" for n in range(7)]


def _rounded(value: Any) -> Any:
    # sums kept by increments may differ from a fresh sum in the last bits
    if isinstance(value, float):
        return round(value, 1)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


async def _assert_equal(db: Database) -> dict[str, Any]:
    async with db.session() as session:
        kept = await stats.summary(session=session, tenant_id=DEFAULT_TENANT)
        counted = await stats.recount(session=session, tenant_id=DEFAULT_TENANT)
    assert _rounded(kept) == _rounded(counted)
    return kept


def _to(revision: str) -> Any:
    def run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    return run


async def test_summaries_follow_every_write(database_url: str) -> None:
    db = Database(database_url)
    try:
        # history stored before the migration: its backfill counts it
        async with db.engine.begin() as conn:
            await conn.run_sync(_to("0009_key_scopes"))
        await seed_history(db, service_ids=SERVICES, incidents=700, open_incidents=7, actions=60)
        await db.migrate()
        before = await _assert_equal(db)
        assert before["incidents"]["total"] == 700
        assert before["actions"]["total"] == 60

        # bulk inserts after it: the triggers count them
        await seed_history(db, service_ids=["late"], incidents=50, open_incidents=1)
        assert (await _assert_equal(db))["incidents"]["total"] == 750

        # the agent's own writes: open, move along, resolve
        async with db.session() as session:
            row, created = await incidents_repo.open_incident(
                session=session,
                tenant_id=DEFAULT_TENANT,
                service_id="fresh",
                type="timeout",
                severity="high",
                summary="s",
                details={},
            )
            assert created
            for to in ("remediating", "verifying", "resolved"):
                assert await incidents_repo.transition(
                    session=session,
                    tenant_id=DEFAULT_TENANT,
                    incident_id=row.id,
                    to=to,
                    allowed_from=incidents_repo.UNRESOLVED,
                )
        summary = await _assert_equal(db)
        assert summary["services"]["fresh"]["incidents"] == 1
        assert summary["services"]["fresh"]["open_incidents"] == 0

        # multi-row statements: a service renamed, outcomes rewritten, retention's delete
        async with db.session() as session:
            await session.execute(
                update(Incident).where(Incident.service_id == "svc-3").values(service_id="svc-9")
            )
            await session.execute(
                update(Incident)
                .where(Incident.service_id == "svc-1", Incident.resolved_at.is_not(None))
                .values(resolved_at=Incident.opened_at)
            )
            await session.execute(update(Action).where(Action.id % 2 == 0).values(outcome=None))
            await session.execute(update(Incident).values(summary="touched"))  # no sums move
            await session.execute(delete(Action).where(Action.service_id == "svc-0"))
            oldest = (
                select(Incident.id).order_by(Incident.id).offset(199).limit(1).scalar_subquery()
            )
            await session.execute(
                delete(Incident).where(
                    Incident.id <= oldest, ~Incident.id.in_(select(Action.incident_id))
                )
            )
        summary = await _assert_equal(db)
        assert summary["services"]["svc-3"]["incidents"] == 0  # its actions stay
        async with db.session() as session:
            total = (await session.execute(select(func.count()).select_from(Incident))).scalar()
        assert summary["incidents"]["total"] == total
    finally:
        await db.close()
