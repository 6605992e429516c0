"""The history writer: a backlog goes out in bounded transactions, in key order, and
what a failed transaction did not write is kept for the next flush (both databases)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import func, select

from selfheal.checks.rollup import RollupBuffer
from selfheal.checks.sample import Sample
from selfheal.errors import StorageError
from selfheal.runtime import history
from selfheal.runtime.history import HistoryWriter
from selfheal.storage.db import Database
from selfheal.storage.repositories import samples as samples_repo
from selfheal.storage.repositories.tenants import ensure_tenant
from selfheal.storage.tables import SampleRollup
from selfheal.types import ServiceKey

SERVICES = 50
MINUTES = 10


def _fill(rollups: RollupBuffer) -> None:
    """SERVICES services, one probe a minute for MINUTES finished minutes."""
    start = (int(time.time() // 60) - MINUTES - 1) * 60
    for minute in range(MINUTES):
        for n in reversed(range(SERVICES)):  # out of key order on purpose
            key = ServiceKey("default", f"svc-{n:03d}")
            rollups.add(Sample(key, start + minute * 60 + 1, True, 5.0, status_code=200))


async def _stored(db: Database) -> int:
    async with db.session() as session:
        return int(
            (await session.execute(select(func.count()).select_from(SampleRollup))).scalar_one()
        )


async def test_a_backlog_goes_out_in_chunks_and_a_failed_one_is_kept(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(database_url)
    await db.migrate()
    async with db.session() as session:
        await ensure_tenant(session=session, tenant_id="default")
    rollups = RollupBuffer()
    _fill(rollups)
    writer = HistoryWriter(db, rollups)
    monkeypatch.setattr(history, "CHUNK", 120)
    chunks: list[list[Any]] = []
    real_merge = samples_repo.merge_rollups

    async def merge(*, session: Any, rows: list[dict[str, Any]]) -> None:
        chunks.append([(r["service_id"], r["minute"]) for r in rows])
        if len(chunks) == 3:
            raise StorageError("database unavailable: the test cut it")
        await real_merge(session=session, rows=rows)

    monkeypatch.setattr(samples_repo, "merge_rollups", merge)
    try:
        with pytest.raises(StorageError):
            await writer.flush()
        assert [len(c) for c in chunks] == [120, 120, 120]
        assert await _stored(db) == 240  # the two chunks before the failure stay written
        flat = [row for chunk in chunks[:2] for row in chunk]
        assert flat == sorted(flat)  # one lock order for every writer
        await writer.flush()  # the rest, kept in memory, goes out with the next flush
        assert await _stored(db) == SERVICES * MINUTES
    finally:
        await db.close()
