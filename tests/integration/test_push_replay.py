"""A captured signed push is refused again after the agent restarts: the accepted
signatures live in the database (SQLite and PostgreSQL) or in Redis, not in memory."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import yaml

from self_healing_sdk import sign
from selfheal.replays import DatabaseReplays, RedisReplays
from selfheal.storage.db import Database
from selfheal.storage.repositories.tenants import ensure_tenant
from selfheal.storage.tables import PushSignature
from selfheal.testing import free_port
from tests.conftest import TEST_KEY, api_client
from tests.helpers import AgentProcess

SECRET = "the-shared-secret"
REDIS_URL = "redis://127.0.0.1:6379/0"


async def _push(url: str, headers: dict[str, str], body: bytes) -> int:
    async with api_client(url) as client:
        response = await client.post("/api/services/shop/events", content=body, headers=headers)
        return response.status_code


async def test_a_replayed_push_is_refused_after_a_restart(
    database_url: str, tmp_path: Path
) -> None:
    """The agent is a real process, stopped and started again: nothing in memory survives."""
    await _replay_after_restart(database_url, tmp_path, {})


async def test_a_replayed_push_is_refused_after_a_restart_with_redis(
    sqlite_url: str, tmp_path: Path
) -> None:
    await _replay_after_restart(sqlite_url, tmp_path, {"REDIS_URL": REDIS_URL})


async def _replay_after_restart(database_url: str, tmp_path: Path, extra: dict[str, str]) -> None:
    config = tmp_path / "selfheal.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "services": [
                    {
                        "id": "shop",
                        "health_url": "http://127.0.0.1:9/health",
                        "secret": SECRET,
                        "interval": "60s",
                    }
                ]
            }
        )
    )
    env = {
        "DATABASE_URL": database_url,
        "API_KEYS": TEST_KEY,
        "SECRET_KEY": "replay-test-secret-key-0123456789",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    } | extra
    agent = AgentProcess(
        config=str(config), env=env, port=free_port(), log_path=tmp_path / "agent.log"
    )
    body = json.dumps({"type": "heartbeat", "metadata": {"nonce": uuid.uuid4().hex}}).encode()
    captured = sign(SECRET, "shop", body)
    await agent.start()
    try:
        assert await _push(agent.url, captured, body) == 202
        assert await _push(agent.url, captured, body) == 401
        if "REDIS_URL" in extra:  # kept in Redis, expiring with the window
            from redis.asyncio import Redis

            async with Redis.from_url(REDIS_URL) as redis:
                signature = captured["X-SelfHeal-Signature"]
                ttl = await redis.ttl(f"selfheal:push-signature:default:shop:{signature}")
                assert 0 < ttl <= 301
        assert await agent.stop() == 0
        await agent.start()  # a restart: memory is gone
        assert await _push(agent.url, captured, body) == 401, agent.log()
        fresh = json.dumps({"type": "heartbeat"}).encode()
        assert await _push(agent.url, sign(SECRET, "shop", fresh), fresh) == 202
    finally:
        await agent.stop()


async def test_database_signatures_expire_after_the_window(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.migrate()
        async with db.session() as session:
            await ensure_tenant(session=session, tenant_id="t1")
        replays = DatabaseReplays(db)
        now = time.time()
        old = {"tenant_id": "t1", "service_id": "s", "signature": "sha256=old"}
        assert await replays.claim(**old, expires_at=now - 1)
        new = {"tenant_id": "t1", "service_id": "s", "signature": "sha256=new"}
        replays._last_purge = 0.0  # the next claim sweeps
        assert await replays.claim(**new, expires_at=now + 300)
        assert not await replays.claim(**new, expires_at=now + 300)
        async with db.session() as session:
            rows = (await session.execute(PushSignature.__table__.select())).all()
        assert [row.signature for row in rows] == ["sha256=new"]
    finally:
        await db.close()


async def test_redis_signatures_expire_with_the_window() -> None:
    replays = RedisReplays(REDIS_URL)
    try:
        signature = "sha256=" + uuid.uuid4().hex
        claim = {"tenant_id": "t1", "service_id": "s", "signature": signature}
        assert await replays.claim(**claim, expires_at=time.time() + 300)
        assert not await replays.claim(**claim, expires_at=time.time() + 300)
        ttl = await replays._redis.ttl(f"selfheal:push-signature:t1:s:{signature}")
        assert 290 <= ttl <= 302
    finally:
        await replays.close()
