"""Shared fixtures: real SQLite and PostgreSQL databases, settings, the agent on a port."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from selfheal.config import Settings

TEST_KEY = "test-key-0123456789"
OTHER_TENANT_KEY = "other-tenant-key-0123"
POSTGRES_ADMIN_URL = os.environ.get(
    "SELFHEAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


async def _create_postgres_database() -> tuple[str, str]:
    name = "selfheal_t_" + uuid.uuid4().hex[:12]
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL is required for the storage tests and is not reachable at "
            f"{POSTGRES_ADMIN_URL} ({exc}). Start it (see .ci/run) or set SELFHEAL_TEST_POSTGRES."
        )
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return name, f"{base}/{name}"


async def _drop_postgres_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'selfheal.db'}"
        return
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database, for tests whose subject is not storage."""
    return f"sqlite+aiosqlite:///{tmp_path / 'selfheal.db'}"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for tests: fast intervals, a known key, no .env from the checkout."""

    def build(database_url: str, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "DATABASE_URL": database_url,
            "SECRET_KEY": SecretStr("test-secret-key-not-for-production"),
            "API_KEYS": [SecretStr(TEST_KEY)],
            "DATA_DIR": tmp_path / "data",
            "CHECK_INTERVAL": 1.0,
            "CHECK_TIMEOUT": 0.8,
            "MAX_RETRIES": 3,
            "RETRY_DELAY": 0.5,
            "ACTION_COOLDOWN": 0,
            "VERIFY_INTERVAL": 0.3,
            "VERIFY_TIMEOUT": 8,
            "WEBHOOK_TIMEOUT": 5,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


def api_client(base_url: str, key: str = TEST_KEY) -> httpx.AsyncClient:
    """An HTTP client for the agent's API with a key."""
    return httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": key}, timeout=10)
