"""Another tenant's key through REST: 0 rows, 0 changes, 0 events.

The test walks the served ``/openapi.json``, so a route added later is covered
without editing it: every GET is sent with tenant A's ids in its path and its
``service_id`` filter and must show none of A's data; then every other method is
sent with A's ids and a body built from the route's schema, and A's rows in the
database must be exactly as they were. The live feed of tenant B hears nothing
while A's services change. A path parameter the walk cannot fill fails the test,
naming it, so a new kind of id is taught here rather than silently skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from selfheal.storage import tables
from selfheal.storage.repositories.tenants import add_api_key
from selfheal.testing import AgentServer, FakeService, seed_history
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
from tests.helpers import wait_for

A_SERVICE = "a-only-service-5c1"
A_MARKS = (A_SERVICE, "a-only-silence-comment", "a-only-pause-reason", "a-only-channel")
A_CHANNEL = "a-only-channel"
# answered without a key, or a stream (walked apart, below)
NOT_WALKED = {"/health", "/health/ready", "/metrics", "/api/events/stream"}
# A's rows that move on their own while the agent runs (probes, learning, clocks)
MOVING_TABLES = {"sample_rollups", "status_changes", "baselines"}
MOVING_COLUMNS = {"updated_at", "last_used_at", "last_seen_at"}


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


class Filler:
    """Values for path parameters, query filters and bodies: A's ids where a name asks."""

    def __init__(self, document: dict[str, Any], ids: dict[str, Any]) -> None:
        self.document = document
        self.ids = ids

    def path_value(self, name: str, where: str) -> str:
        for part, value in self.ids.items():
            if part in name:
                return str(value)
        pytest.fail(f"the walk cannot fill the path parameter {name!r} of {where}: teach it")

    def body(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema = _resolve(self.document, schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                parts = [p for p in schema[key] if p.get("type") != "null"]
                return self.body(parts[0], depth) if parts else None
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            required = set(schema.get("required", []))
            out: dict[str, Any] = {}
            for name, sub in schema.get("properties", {}).items():
                if name in required or name in ("service_id", "matchers") or depth == 0:
                    value = self.named(name, sub, depth)
                    if value is not None:
                        out[name] = value
            return out
        return self.scalar(schema)

    def named(self, name: str, schema: dict[str, Any], depth: int) -> Any:
        if name == "service_id":
            return A_SERVICE
        if name.endswith("url"):
            return "http://127.0.0.1:9/health"
        if depth > 3:
            return None
        return self.body(schema, depth + 1)

    def scalar(self, schema: dict[str, Any]) -> Any:
        if "enum" in schema:
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        kind = schema.get("type")
        if kind in ("integer", "number"):
            low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
            return max(low, min(schema.get("maximum", 60), 60))
        if kind == "boolean":
            return False
        if kind == "array":
            return []
        if kind == "string":
            return "from-tenant-b"
        return None


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, items in document["paths"].items()
        if path not in NOT_WALKED
        for method, operation in items.items()
    ]


def _url(filler: Filler, path: str, operation: dict[str, Any]) -> tuple[str, dict[str, str]]:
    query: dict[str, str] = {}
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if parameter["in"] == "path":
            path = path.replace("{" + name + "}", filler.path_value(name, path))
        elif parameter["in"] == "query" and name == "service_id":
            query[name] = A_SERVICE
    return path, query


async def _rows_of_a(server: AgentServer) -> dict[str, list[dict[str, Any]]]:
    """Every row of tenant A, but those that move on their own."""
    found: dict[str, list[dict[str, Any]]] = {}
    async with server.agent.db.session() as session:
        for table in tables.Base.metadata.sorted_tables:
            if "tenant_id" not in table.c or table.name in MOVING_TABLES:
                continue
            keys = list(table.primary_key.columns)
            query = select(table).where(table.c.tenant_id == "default").order_by(*keys)
            rows = (await session.execute(query)).mappings().all()
            found[table.name] = [
                {k: str(v) for k, v in row.items() if k not in MOVING_COLUMNS} for row in rows
            ]
    return found


async def _listen(url: str, key: str, sink: list[str]) -> None:
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", f"{url}/api/events/stream", headers={"X-API-Key": key}) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: "):
                sink.append(line[6:])


async def test_another_tenants_key_reads_changes_and_hears_nothing_through_rest(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, CHECK_INTERVAL=30.0)
    async with FakeService(service_id=A_SERVICE) as service, AgentServer(settings) as server:
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        a, b = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        body = {"service_id": A_SERVICE, "health_url": service.health_url}
        assert (await a.post("/api/services/register", json=body)).status_code == 201
        # escalated incidents with actions: history no heal loop touches
        await seed_history(
            server.agent.db, service_ids=[A_SERVICE], incidents=6, open_incidents=2, actions=3
        )
        silence = {"matchers": {"service_id": A_SERVICE}, "duration": 600}
        silence["comment"] = "a-only-silence-comment"
        made = await a.post("/api/silences", json=silence)
        assert made.status_code == 201, made.text
        pause = {"service_id": A_SERVICE, "reason": "a-only-pause-reason"}
        assert (await a.post("/api/automation/pause", json=pause)).status_code == 200
        channel = {"type": "webhook", "url": "http://127.0.0.1:9/a-only-channel"}
        put = await a.put(f"/api/tenant/channels/{A_CHANNEL}", json=channel)
        assert put.status_code == 201, put.text
        incidents = (await a.get("/api/incidents")).json()["data"]
        incident = (await a.get(f"/api/incidents/{incidents[0]['id']}")).json()
        a_keys = (await a.get("/api/keys")).json()["data"]
        ids = {
            "service": A_SERVICE,
            "incident": incident["id"],
            "silence": made.json()["id"],
            "group": incident["group_id"],
            "key": a_keys[0]["id"],
            "name": A_CHANNEL,
        }
        document = (await a.get("/openapi.json")).json()
        filler = Filler(document, ids)
        operations = _operations(document)

        # every GET: A sees its data, B sees none of it
        reads = [(p, o) for m, p, o in operations if m == "GET"]
        seen_by_a = []
        for path, operation in reads:
            url, query = _url(filler, path, operation)
            answer = await a.get(url, params=query)
            assert answer.status_code < 500, (path, answer.text)
            seen_by_a.append(answer.text)
            theirs = await b.get(url, params=query)
            assert theirs.status_code < 500, (path, theirs.text)
            asked = url + json.dumps(query)  # an error may name the id it was asked for
            leaked = [
                m for m in A_MARKS if m in theirs.text and not (theirs.is_error and m in asked)
            ]
            assert not leaked, (path, leaked, theirs.text[:500])
        every = "".join(seen_by_a)
        assert all(mark in every for mark in A_MARKS)  # the walk reaches A's data

        # every change, with A's ids and schema-built bodies: A's rows stay as they were
        before = await _rows_of_a(server)
        heard_by_b: list[str] = []
        listening = asyncio.create_task(_listen(server.url, OTHER_TENANT_KEY, heard_by_b))
        writes = [(m, p, o) for m, p, o in operations if m != "GET"]
        for method, path, operation in writes:
            url, query = _url(filler, path, operation)
            schema = (
                operation.get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema")
            )
            payload = filler.body(schema) if schema is not None else None
            answer = await b.request(method, url, params=query, json=payload)
            assert answer.status_code < 500, (method, path, payload, answer.text)
        after = await _rows_of_a(server)
        for table, rows in before.items():
            assert after[table] == rows, f"tenant b changed tenant a's {table}"

        # the live feed: A's changes reach A's stream, never B's
        heard_by_a: list[str] = []
        mine = asyncio.create_task(_listen(server.url, TEST_KEY, heard_by_a))
        await asyncio.sleep(0.5)  # both streams subscribed
        more = {"service_id": "a-only-second", "health_url": service.health_url}
        assert (await a.post("/api/services/register", json=more)).status_code == 201
        await wait_for(lambda: _heard(heard_by_a, "a-only-second"), 10)
        await asyncio.sleep(0.5)
        assert not any("a-only" in event for event in heard_by_b), heard_by_b
        for task in (listening, mine):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        print(f"\nroutes walked: {len(reads)} reads, {len(writes)} changes")
        await a.aclose()
        await b.aclose()


async def _heard(events: list[str], mark: str) -> bool:
    return any(mark in json.dumps(event) for event in events)
