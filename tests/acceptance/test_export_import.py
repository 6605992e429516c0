"""Export, import, backup: a SQLite fleet's history moves to PostgreSQL and reads the same.

The history is real: an agent on SQLite heals a loopback service twice. The CLI
exports it, imports it into a fresh PostgreSQL database, and an agent on that
database serves the same services, incidents (with timeline and actions) and
learned rankings. Import refuses a non-empty database; backup copies a store
while the agent keeps writing to it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import text

from selfheal.cli.main import cli
from selfheal.storage.db import Database
from selfheal.testing import AgentServer, FakeService
from tests.conftest import _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import list_incidents, wait_for


async def _heal_twice(server: AgentServer, service: FakeService) -> None:
    client = api_client(server.url)
    registered = await client.post(
        "/api/services/register",
        json={
            "service_id": "shop",
            "name": "Shop",
            "health_url": service.health_url,
            "webhook_url": service.webhook_url,
            "secret": service.secret,
            "tags": ["critical"],
        },
    )
    assert registered.status_code == 201, registered.text
    for _ in range(2):
        before = len(service.accepted_calls)
        service.break_as("http_500")

        async def healed(before: int = before) -> bool:
            if len(service.accepted_calls) <= before:
                return False
            incidents = await list_incidents(client, service_id="shop")
            return bool(incidents) and all(i["status"] == "resolved" for i in incidents)

        await wait_for(healed, 30)
    await client.aclose()


REGISTERED = ("service_id", "name", "health_url", "webhook_url", "has_secret", "tags", "metadata")


async def _snapshot(client: httpx.AsyncClient) -> dict[str, Any]:
    """What an operator sees: services, incidents with timelines and actions, rankings."""
    services = (await client.get("/api/services")).json()["data"]
    incidents = await list_incidents(client, limit=100)
    details = [(await client.get(f"/api/incidents/{i['id']}")).json() for i in incidents]
    learning = (await client.get("/api/services/shop/learning")).json()
    return {
        # what was registered; status and probe timing are the new agent's own
        "services": [{k: s[k] for k in REGISTERED} for s in services],
        "incidents": details,  # every field, timeline and actions included
        "learning": learning,
    }


def _cli(args: list[str], database_url: str) -> Any:
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "x" * 32}
    return CliRunner().invoke(cli, args, env=env)


async def _cli_async(args: list[str], database_url: str) -> Any:
    """The CLI runs its own event loop: off this test's loop, in a thread."""
    return await asyncio.to_thread(_cli, args, database_url)


@pytest.mark.slow
async def test_sqlite_history_moves_to_postgresql(
    sqlite_url: str, make_settings: Any, tmp_path: Path
) -> None:
    async with FakeService(service_id="shop") as service:
        async with AgentServer(make_settings(sqlite_url)) as server:
            await _heal_twice(server, service)
            async with api_client(server.url) as client:
                before = await _snapshot(client)
        assert len(before["incidents"]) == 2
        assert before["learning"]["service"], "the heals taught the agent nothing"

    export = tmp_path / "fleet.jsonl"
    exported = await _cli_async(["export", str(export)], sqlite_url)
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert lines[0]["format"] == "selfheal-export"
    tables = {line["table"] for line in lines[1:]}
    assert {"services", "incidents", "incident_events", "actions", "learning_arms"} <= tables
    assert "secret_encrypted" not in export.read_text()
    assert service.secret not in export.read_text()

    name, pg_url = await _create_postgres_database()
    try:
        imported = await _cli_async(["import", str(export)], pg_url)
        assert imported.exit_code == 0, imported.output
        again = await _cli_async(["import", str(export)], pg_url)
        assert again.exit_code == 2
        assert "the database is not empty" in again.output
        assert "import only into an empty database" in again.output

        # a dead service must not open a new incident while the snapshot is taken
        quiet = make_settings(pg_url, CHECK_INTERVAL=600, MAX_RETRIES=10, RETRY_DELAY=600)
        async with AgentServer(quiet) as server:
            async with api_client(server.url) as client:
                after = await _snapshot(client)
            # ids continue past the imported ones: a new incident does not collide
            db = Database(pg_url)
            try:
                async with db.engine.connect() as conn:
                    nextval = (
                        await conn.execute(text("SELECT nextval('incidents_id_seq')"))
                    ).scalar()
                assert nextval is not None
                assert nextval > max(i["id"] for i in before["incidents"])
            finally:
                await db.close()
    finally:
        await _drop_postgres_database(name)
    # the secret was not exported, so the service comes back without one
    for row in before["services"]:
        row["has_secret"] = False
    assert after["services"] == before["services"]
    assert after["incidents"] == before["incidents"]
    assert after["learning"] == before["learning"]


def test_import_refuses_what_is_not_an_export(sqlite_url: str, tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.jsonl"
    bogus.write_text('{"hello": 1}\n')
    result = _cli(["import", str(bogus)], sqlite_url)
    assert result.exit_code == 2
    assert "not a selfheal export" in result.output


def test_backup_of_a_live_store_and_postgresql_refused(sqlite_url: str, tmp_path: Path) -> None:
    path = Path(sqlite_url.split("///", 1)[1])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    conn.commit()
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t VALUES (-1)")  # a writer in the middle of a transaction
    copy = tmp_path / "backup.db"
    result = _cli(["backup", str(copy)], sqlite_url)
    conn.rollback()
    conn.close()
    assert result.exit_code == 0, result.output
    restored = sqlite3.connect(copy)
    assert restored.execute("SELECT count(*), min(x) FROM t").fetchone() == (1000, 0)
    restored.close()

    exists = _cli(["backup", str(copy)], sqlite_url)
    assert exists.exit_code == 2
    assert "never overwrites" in exists.output
    on_pg = _cli(["backup", str(tmp_path / "x.db")], "postgresql+asyncpg://u@127.0.0.1/db")
    assert on_pg.exit_code == 2
    assert "pg_dump" in on_pg.output


async def test_export_since_keeps_state_and_only_recent_history(
    sqlite_url: str, tmp_path: Path
) -> None:
    from tests.integration.test_retention import RECENT, _seed_history

    db = Database(sqlite_url)
    try:
        await db.migrate()
        await _seed_history(db)  # ten rows of each kind 40 days old and 5 days old
    finally:
        await db.close()
    since = (RECENT - timedelta(days=1)).date().isoformat()
    out = tmp_path / "recent.jsonl"
    result = await _cli_async(["export", "--since", since, str(out)], sqlite_url)
    assert result.exit_code == 0, result.output
    counts = Counter(json.loads(line).get("table") for line in out.read_text().splitlines()[1:])
    assert counts["sample_rollups"] == counts["status_changes"] == counts["audit_log"] == 10
    # every incident was opened 40 days ago: none, nor their timelines and actions
    assert counts["incidents"] == counts["incident_events"] == counts["actions"] == 0
    assert counts["learning_arms"] == counts["baselines"] == counts["tenants"] == 1

    bad = await _cli_async(["export", "--since", "last week", str(out)], sqlite_url)
    assert bad.exit_code == 2
    assert "neither a number of days (30d) nor an ISO date" in bad.output
    days = await _cli_async(["export", "--since", "3650d", str(tmp_path / "all.jsonl")], sqlite_url)
    assert days.exit_code == 0, days.output
