"""Database timeouts on PostgreSQL behind a black hole: every wait is bounded, a
connection that timed out is dropped at once, and the pool recovers when the
route is back."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from selfheal.errors import StorageError
from selfheal.storage.db import Database, Timeouts
from tests.conftest import _create_postgres_database, _drop_postgres_database
from tests.helpers import TcpProxy

BOUND = 3.0 + 1.0  # the statement timeout, and a second of slack for a loaded machine


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[Database, TcpProxy]]:
    name, url = await _create_postgres_database()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    db = Database(
        url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
        timeouts=Timeouts(connect=2.0, statement=3.0, pool=2.0),
    )
    try:
        await db.migrate()
        yield db, proxy
    finally:
        await proxy.cut()
        await db.close()
        await _drop_postgres_database(name)


async def _timed_failure(db: Database) -> float:
    started = time.monotonic()
    with pytest.raises(StorageError):
        await db.ping()
    return time.monotonic() - started


async def test_idle_connections_and_new_ones_fail_fast(
    proxied: tuple[Database, TcpProxy],
) -> None:
    db, proxy = proxied
    await db.ping()  # a pooled, idle connection
    proxy.blackhole()
    assert await _timed_failure(db) < BOUND  # pre-ping (1 s) then connect (2 s)
    assert await _timed_failure(db) < BOUND  # connect only
    proxy.heal()
    await db.ping()


async def test_a_statement_in_flight_fails_fast(proxied: tuple[Database, TcpProxy]) -> None:
    db, proxy = proxied

    async def cut_mid_session() -> None:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
            proxy.blackhole()
            await session.execute(text("SELECT 1"))

    started = time.monotonic()
    with pytest.raises(StorageError):
        await cut_mid_session()
    assert time.monotonic() - started < BOUND
    proxy.heal()
    await db.ping()


async def test_a_statement_past_its_timeout_is_a_storage_error() -> None:
    """A busy database (a lock queue, a slow plan) is retried like an outage by the
    callers, never a crash of a heal loop: the statement timeout becomes StorageError."""
    name, url = await _create_postgres_database()
    db = Database(url, timeouts=Timeouts(connect=2.0, statement=0.5, pool=2.0))
    try:
        with pytest.raises(StorageError, match="did not answer in time"):
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(3)"))
        await db.ping()
    finally:
        await db.close()
        await _drop_postgres_database(name)
