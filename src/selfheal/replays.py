"""Replay protection for signed pushes that survives a restart of the agent.

A signed push (``POST /api/services/{id}/events``) carries its timestamp in
the signature, and is refused once the timestamp is more than 300 s off. Inside
that window the only defence against a captured push sent again is to remember
every signature accepted until its window closes. Memory forgets at a restart,
so the signatures live in the database (table ``push_signatures``), or in Redis
when ``REDIS_URL`` is set (``SET NX EX``: one round trip, expiry by Redis itself,
shared by every replica).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import delete

from selfheal.errors import StorageError
from selfheal.storage.db import Database
from selfheal.storage.repositories.upsert import insert_for
from selfheal.storage.tables import PushSignature

PURGE_EVERY = 60.0  # seconds between two sweeps of expired rows


class ReplayStore(Protocol):
    """Where accepted push signatures are remembered until their window closes."""

    async def claim(
        self, *, tenant_id: str, service_id: str, signature: str, expires_at: float
    ) -> bool:
        """True if the signature is new (and remember it until ``expires_at``, unix
        seconds); False if it was accepted before: a replay."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class DatabaseReplays:
    """Signatures in the ``push_signatures`` table; the primary key settles races."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_purge = 0.0

    async def claim(
        self, *, tenant_id: str, service_id: str, signature: str, expires_at: float
    ) -> bool:
        """Insert the signature; a conflict on the key means it was seen."""
        now = time.time()
        async with self._db.session() as session:
            if now - self._last_purge >= PURGE_EVERY:
                self._last_purge = now
                await session.execute(
                    delete(PushSignature).where(PushSignature.expires_at < _utc(now))
                )
            stmt = insert_for(session, PushSignature).values(
                tenant_id=tenant_id,
                service_id=service_id,
                signature=signature,
                expires_at=_utc(expires_at),
            )
            result = await session.execute(stmt.on_conflict_do_nothing())
        return bool(getattr(result, "rowcount", 0))

    async def close(self) -> None:
        """Nothing to release: the database is the agent's."""


class RedisReplays:
    """Signatures as Redis keys that expire when their window closes."""

    def __init__(self, url: str, *, timeout: float = 2.0) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )

    async def claim(
        self, *, tenant_id: str, service_id: str, signature: str, expires_at: float
    ) -> bool:
        """``SET key 1 NX EX ttl``: set only if absent, in one atomic command."""
        from redis.exceptions import RedisError

        ttl = max(1, int(expires_at - time.time()) + 1)
        key = f"selfheal:push-signature:{tenant_id}:{service_id}:{signature}"
        try:
            return bool(await self._redis.set(key, b"1", nx=True, ex=ttl))
        except (RedisError, OSError) as exc:
            raise StorageError(f"Redis unavailable: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def open_replay_store(db: Database, redis_url: str | None) -> ReplayStore:
    """Redis when a URL is given, the database otherwise."""
    return RedisReplays(redis_url) if redis_url else DatabaseReplays(db)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
