"""Key changes reach every replica: two `selfheal serve` processes on one PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from selfheal.testing import free_port
from tests.conftest import TEST_KEY, _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import AgentProcess, wait_for

WITHIN = 5.0  # issue 14: a revoked or expired key is refused within 5 s on every replica


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def test_a_key_revoked_on_one_replica_is_refused_by_the_other(
    postgres_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "selfheal.yaml"
    config.write_text("services: []\n")
    env = {
        "DATABASE_URL": postgres_url,
        "API_KEYS": TEST_KEY,
        "SECRET_KEY": "replica-test-secret-key-0123456789",
        "DATA_DIR": str(tmp_path / "data"),
        "AUTH_FAILURES_PER_MINUTE": "100000",  # polling must not be throttled into 429s
    }
    replicas = [
        AgentProcess(config=str(config), env=env, port=free_port(), log_path=tmp_path / f"r{i}.log")
        for i in range(2)
    ]
    try:
        for replica in replicas:
            await replica.start()
        a, b = api_client(replicas[0].url), api_client(replicas[1].url)
        created = (await a.post("/api/keys", json={"name": "ci", "scope": "write"})).json()
        on_b = api_client(replicas[1].url, created["key"])

        async def status_on_b(expected: int) -> bool:
            return (await on_b.get("/api/services")).status_code == expected

        await wait_for(lambda: status_on_b(200), WITHIN, interval=0.05)

        # rotated on A with a 3 s overlap: B takes the new key and keeps the old one meanwhile
        rotated = (await a.post(f"/api/keys/{created['id']}/rotate", json={"overlap": "3s"})).json()
        rotated_at = time.monotonic()
        new_on_b = api_client(replicas[1].url, rotated["new"]["key"])

        async def new_works() -> bool:
            return (await new_on_b.get("/api/services")).status_code == 200

        await wait_for(new_works, WITHIN, interval=0.05)
        assert await status_on_b(200)
        await wait_for(lambda: status_on_b(401), 3.0 + WITHIN, interval=0.05)
        assert time.monotonic() - rotated_at >= 2.9

        # revoked on A: refused by B within 5 s
        assert (await a.delete(f"/api/keys/{rotated['new']['id']}")).status_code == 204
        revoked_at = time.monotonic()

        async def new_refused() -> bool:
            return (await new_on_b.get("/api/services")).status_code == 401

        await wait_for(new_refused, WITHIN, interval=0.05)
        print(f"\nrevoked on replica A, refused by B after {time.monotonic() - revoked_at:.2f} s")
        for client in (a, b, on_b, new_on_b):
            await client.aclose()
    finally:
        for replica in replicas:
            await replica.stop()
