"""Persisted traces of samples: status changes and per-minute rollups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import SampleRollup, StatusChange


async def add_status_changes(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of status changes (each dict carries its tenant_id)."""
    if rows:
        await session.execute(insert_for(session, StatusChange), rows)


async def merge_rollups(*, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of minute rollups, merging into a minute already written."""
    if not rows:
        return
    stmt = insert_for(session, SampleRollup)
    excluded = stmt.excluded
    table = SampleRollup.__table__.c
    stmt = stmt.on_conflict_do_update(
        index_elements=["tenant_id", "service_id", "minute"],
        set_={
            "probes": table.probes + excluded.probes,
            "ok": table.ok + excluded.ok,
            "response_ms_sum": table.response_ms_sum + excluded.response_ms_sum,
            **{
                name: _larger(table[name], excluded[name])
                for name in (
                    "response_ms_max",
                    "cpu_max",
                    "memory_max",
                    "error_rate_max",
                    "latency_ms_max",
                )
            },
        },
    )
    await session.execute(stmt, rows)


def _larger(current: Any, incoming: Any) -> Any:
    # portable max(a, b) that treats NULL as "nothing seen"
    return case(
        (current.is_(None), incoming),
        (incoming.is_(None), current),
        (incoming > current, incoming),
        else_=current,
    )


async def rollups(
    *, session: AsyncSession, tenant_id: str, service_id: str, since: datetime
) -> Sequence[SampleRollup]:
    """A service's minutes since a time, oldest first."""
    result = await session.execute(
        select(SampleRollup)
        .where(
            SampleRollup.tenant_id == tenant_id,
            SampleRollup.service_id == service_id,
            SampleRollup.minute >= since,
        )
        .order_by(SampleRollup.minute)
    )
    return result.scalars().all()


async def status_changes(
    *, session: AsyncSession, tenant_id: str, service_id: str, limit: int = 100
) -> Sequence[StatusChange]:
    """A service's latest status changes, newest first."""
    result = await session.execute(
        select(StatusChange)
        .where(StatusChange.tenant_id == tenant_id, StatusChange.service_id == service_id)
        .order_by(StatusChange.id.desc())
        .limit(limit)
    )
    return result.scalars().all()
