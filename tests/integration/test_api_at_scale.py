"""The API with 100,000 stored incidents: aggregates stay in the database (GET /api/metrics,
/status and /api/insights read a bounded number of rows), and the queries behind every
incident filter read an index, never the whole table."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from selfheal.storage.db import Database
from selfheal.testing import SEED_TYPES, AgentServer, seed_history
from tests.conftest import _create_postgres_database, _drop_postgres_database, api_client

INCIDENTS = 100_000
SERVICES = [f"svc-{n:03d}" for n in range(100)]
ACTIONS = 3_000
# a summary may read one row per service and a few per (type, status) and
# (action, outcome); the old summary read every incident (100,000 rows)
ROWS_BOUND = 2 * len(SERVICES) + 100
# a row per (service, type) and per service, and the co-failing pairs: the seeded fleet
# fails round-robin, so each service truly co-fails with its neighbours (500 pairs)
INSIGHTS_BOUND = len(SERVICES) * (len(SEED_TYPES) + 1 + 5) + 100


async def _seed(url: str) -> None:
    db = Database(url)
    try:
        await db.migrate()
        await seed_history(db, service_ids=SERVICES, incidents=INCIDENTS, actions=ACTIONS)
        if not db.is_sqlite:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")  # what autovacuum does by itself
    finally:
        await db.close()


class RowCounter:
    """Counts the rows each statement hands back to Python, per request."""

    def __init__(self) -> None:
        self.rows = 0
        self.statements: list[tuple[int, str]] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        # the async adapters fetch the whole result into ``_rows`` during execute
        buffered = cursor._rows
        self.rows += len(buffered)
        self.statements.append((len(buffered), statement[:120]))


async def test_metrics_and_status_read_a_bounded_number_of_rows(
    database_url: str, make_settings: Any
) -> None:
    await _seed(database_url)
    async with AgentServer(make_settings(database_url)) as server:
        counter = RowCounter()
        async with api_client(server.url) as client:
            event.listen(server.agent.db.engine.sync_engine, "after_cursor_execute", counter)
            response = await client.get("/api/metrics")
            assert response.status_code == 200
            metrics_rows = counter.rows
            counter.rows = 0
            status = await client.get("/status")
            assert status.status_code == 200
            status_rows = counter.rows
            counter.rows = 0
            charts = await client.get("/api/charts", params={"range": "30d"})
            assert charts.status_code == 200
            charts_rows = counter.rows
            counter.rows = 0
            counter.statements = []
            insights = await client.get("/api/insights", timeout=120)
            assert insights.status_code == 200, insights.text
            insights_rows = counter.rows
            insights_statements = counter.statements
        event.remove(server.agent.db.engine.sync_engine, "after_cursor_execute", counter)
    body = response.json()
    assert body["incidents"]["total"] == INCIDENTS
    assert body["incidents"]["open"] == 200
    assert body["incidents"]["by_status"]["escalated"] == 200
    assert sum(body["incidents"]["by_status"].values()) == INCIDENTS
    assert body["actions"]["total"] == ACTIONS
    assert len(body["services"]) == len(SERVICES)
    assert body["services"]["svc-000"]["incidents"] == INCIDENTS // len(SERVICES)
    assert 30 <= body["mttr_seconds"] <= 120
    assert status.json()["open_incidents"] == 200
    assert metrics_rows <= ROWS_BOUND, counter.statements
    assert status_rows <= 10, f"GET /status read {status_rows} rows"
    # 60 half-day buckets, grouped by the database (it read 43,200 incidents before)
    assert 29 * 24 * 60 < charts.json()["incidents_opened"] <= 30 * 24 * 60  # one a minute
    assert charts_rows <= 2 * 60 + ROWS_BOUND, counter.statements
    # 43,200 incidents in the 30-day window; the database counts episodes, windows and
    # pairs, and Python reads a row per (service, type), per service and per candidate
    assert insights_rows <= INSIGHTS_BOUND, insights_statements


LIST_QUERIES = {
    "unresolved count": (
        "SELECT count(*) FROM incidents WHERE tenant_id = 'default' AND resolved_at IS NULL"
    ),
    "newest first": "SELECT * FROM incidents WHERE tenant_id = 'default' ORDER BY id DESC LIMIT 50",
    "by status": (
        "SELECT * FROM incidents WHERE tenant_id = 'default' AND status = 'open' "
        "ORDER BY id DESC LIMIT 50"
    ),
    "by service": (
        "SELECT * FROM incidents WHERE tenant_id = 'default' AND service_id = 'svc-007' "
        "AND id < 90000 ORDER BY id DESC LIMIT 50"
    ),
    "actions by service": (
        "SELECT * FROM actions WHERE tenant_id = 'default' AND service_id = 'svc-007' "
        "ORDER BY id DESC LIMIT 50"
    ),
}


async def _plan(conn: AsyncConnection, sqlite: bool, sql: str) -> str:
    prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN "
    rows = (await conn.execute(text(prefix + sql))).all()
    return "\n".join(str(row[-1]) for row in rows)


async def test_every_incident_filter_reads_an_index(database_url: str, make_settings: Any) -> None:
    await _seed(database_url)
    # the agent's start (migrations, then statistics) is what makes the plans right
    async with AgentServer(make_settings(database_url)) as server:
        db = server.agent.db
        async with db.engine.connect() as conn:
            for name, sql in LIST_QUERIES.items():
                plan = await _plan(conn, db.is_sqlite, sql)
                if db.is_sqlite:
                    assert not any(
                        line.startswith("SCAN") and "INDEX" not in line
                        for line in plan.splitlines()
                    ), f"{name}: {plan}"
                    assert "TEMP B-TREE" not in plan, f"{name}: {plan}"
                else:
                    assert "Seq Scan" not in plan, f"{name}: {plan}"
                    assert "Sort" not in plan, f"{name}: {plan}"


async def test_postgresql_pool_serves_16_clients_without_opening_connections(
    make_settings: Any,
) -> None:
    name, url = await _create_postgres_database()
    try:
        async with AgentServer(make_settings(url)) as server, api_client(server.url) as client:
            opened = 0

            def count(*_: Any) -> None:
                nonlocal opened
                opened += 1

            async def burst() -> None:
                async def one_client() -> None:
                    for _ in range(10):
                        for path in ("/status", "/api/metrics", "/api/incidents?limit=50"):
                            assert (await client.get(path)).status_code == 200

                await asyncio.gather(*(one_client() for _ in range(16)))

            await burst()  # warm: the pool grows to what 16 clients need
            event.listen(server.agent.db.engine.sync_engine, "connect", count)
            await burst()
            await burst()
            event.remove(server.agent.db.engine.sync_engine, "connect", count)
        assert opened == 0, f"{opened} new connections under steady load"
    finally:
        await _drop_postgres_database(name)
