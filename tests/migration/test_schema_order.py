"""Every install gets the same schema: indexes in the same order whatever the hash seed.

SQLite's planner, when it has no statistics, breaks ties between indexes by
their order in the schema; an order that changed with ``PYTHONHASHSEED``
made some installs count open incidents by scanning the whole table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import _create_postgres_database, _drop_postgres_database

SCHEMA = """
import asyncio, sys
from sqlalchemy import text
from selfheal.storage.db import Database

SQLITE = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"
POSTGRES = (
    "SELECT t.relname, c.relname, pg_get_indexdef(c.oid) FROM pg_index i "
    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
    "JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = 'public' "
    "ORDER BY t.relname, c.oid"
)

async def main(url):
    db = Database(url)
    await db.migrate()
    async with db.engine.connect() as conn:
        for row in await conn.execute(text(SQLITE if db.is_sqlite else POSTGRES)):
            print("schema", tuple(row))
    await db.close()

asyncio.run(main(sys.argv[1]))
"""


def _schema(url: str, seed: str) -> str:
    env = os.environ | {"PYTHONHASHSEED": seed}
    done = subprocess.run(
        [sys.executable, "-c", SCHEMA, url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    # only the schema rows: the agent's own log lines carry timestamps
    return "\n".join(line for line in done.stdout.splitlines() if line.startswith("schema "))


def test_sqlite_schema_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    # seeds 1 and 2 gave different index orders before migration 0007
    first = _schema(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}", "1")
    second = _schema(f"sqlite+aiosqlite:///{tmp_path / 'two.db'}", "2")
    assert "ix_incidents_tenant_id" in first
    assert first == second


async def test_postgresql_indexes_do_not_depend_on_the_hash_seed() -> None:
    names_urls = [await _create_postgres_database() for _ in range(2)]
    try:
        first = _schema(names_urls[0][1], "1")
        second = _schema(names_urls[1][1], "2")
    finally:
        for name, _url in names_urls:
            await _drop_postgres_database(name)
    assert "ix_incidents_tenant_id" in first
    assert first == second
