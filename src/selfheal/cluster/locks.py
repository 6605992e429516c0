"""PostgreSQL advisory locks held across several transactions (start-up writes).

Replicas started together write the same start-up rows (the default tenant, API
keys from the environment, the catalog, the config file's services and silences);
done at the same moment, two inserts of one row make one replica fail to start.
The lock serialises those writes. It is polled with ``pg_try_advisory_lock``
rather than waited for in one statement, so no statement outlives the
statement timeout, and it is a session lock on one pooled connection, so the
writes themselves may use any other connection.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from selfheal.errors import StorageError
from selfheal.storage.db import Database

STARTUP_LOCK = 0x5E1F_0001
POLL = 0.1


class HeldLock:
    """An advisory lock this process holds until ``release`` (a no-op on SQLite)."""

    def __init__(self, key: int, conn: AsyncConnection | None) -> None:
        self.key = key
        self._conn = conn

    async def release(self) -> None:
        """Unlock and return the connection to the pool."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
        finally:
            await conn.close()


async def hold(db: Database, key: int, *, wait: float = 120.0) -> HeldLock:
    """Take the advisory lock ``key``, waiting up to ``wait`` seconds for its holder."""
    if db.is_sqlite:
        return HeldLock(key, None)
    conn = await db.engine.connect()
    deadline = time.monotonic() + wait
    try:
        while True:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key})
            await conn.commit()  # the session lock outlives the transaction; no open snapshot
            if got:
                return HeldLock(key, conn)
            if time.monotonic() > deadline:
                raise StorageError(f"another replica held the start-up lock for over {wait:g}s")
            await asyncio.sleep(POLL)
    except BaseException:
        await conn.close()
        raise
