"""Another tenant's key through GraphQL: 0 rows, 0 changes, 0 events.

The test walks the served schema by introspection, so a query, mutation or
subscription added later is covered without editing it: each query field is asked
for every scalar it has (and those of the objects one level down) with tenant A's
ids as arguments; each mutation is sent with A's ids; each subscription is opened
while A's events flow. An argument the walk cannot fill fails the test, naming it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import AuditEntry
from selfheal.testing import AgentServer, seed_history
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
from tests.integration.test_graphql_api import GraphWs, gql, subscribed

A_SERVICE = "a-only-service-7f3"
A_MARKS = (A_SERVICE, "a-only-silence-comment", "a-only-pause-reason")
# fields that move on their own while the agent runs (probes, clocks)
VOLATILE = {"at", "status", "statusSince", "lastCheck", "lastCheckAt", "responseMs", "recentMs"}
VOLATILE |= {"recentOk", "ok", "byStatus", "updatedAt", "timeline"}

TYPE_REF = "kind name ofType { kind name ofType { kind name ofType { kind name } } }"
INTROSPECTION = f"""{{ __schema {{
  queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }}
  types {{ name kind
    fields {{ name type {{ {TYPE_REF} }} args {{ name defaultValue type {{ {TYPE_REF} }} }} }}
    inputFields {{ name defaultValue type {{ {TYPE_REF} }} }} }} }} }}"""


def _named(ref: dict[str, Any]) -> dict[str, Any]:
    while ref.get("ofType"):
        ref = ref["ofType"]
    return ref


def _required(item: dict[str, Any]) -> bool:
    return item["type"]["kind"] == "NON_NULL" and item.get("defaultValue") is None


class Walk:
    """Builds documents from the introspected schema."""

    def __init__(self, schema: dict[str, Any], incident_id: str) -> None:
        self.types = {t["name"]: t for t in schema["types"]}
        self.values: dict[str, Any] = {
            "id": incident_id,
            "serviceId": A_SERVICE,
            "healthUrl": "http://127.0.0.1:9/health",
            "comment": "from tenant b",
            "duration": 60,
            "reason": "from tenant b",
            "note": "from tenant b",
        }

    def fields(self, root: str) -> list[dict[str, Any]]:
        return list(self.types[root]["fields"])

    def value(self, item: dict[str, Any], where: str) -> str | None:
        name = item["name"]
        named = _named(item["type"])
        if named["kind"] == "INPUT_OBJECT":
            parts = []
            for field in self.types[named["name"]]["inputFields"]:
                given = self.value(field, f"{where}.{field['name']}")
                if given is not None:
                    parts.append(f"{field['name']}: {given}")
            return "{" + ", ".join(parts) + "}"
        if name in self.values:
            return json.dumps(self.values[name])
        if _required(item):
            pytest.fail(f"the walk cannot fill the required argument {where}: teach it (values)")
        return None

    def arguments(self, field: dict[str, Any]) -> str:
        parts = []
        for arg in field["args"]:
            given = self.value(arg, f"{field['name']}.{arg['name']}")
            if given is not None:
                parts.append(f"{arg['name']}: {given}")
        return f"({', '.join(parts)})" if parts else ""

    def selection(self, type_name: str, depth: int) -> str:
        picked = []
        for field in self.types[type_name]["fields"]:
            named = _named(field["type"])
            if named["kind"] in ("SCALAR", "ENUM"):
                picked.append(field["name"])
            elif (
                named["kind"] == "OBJECT"
                and depth < 1
                and not any(_required(a) for a in field["args"])
            ):
                picked.append(f"{field['name']} {{ {self.selection(named['name'], depth + 1)} }}")
        return " ".join(picked)

    def document(self, kind: str, field: dict[str, Any]) -> str:
        named = _named(field["type"])
        inner = ""
        if named["kind"] == "OBJECT":
            inner = "{ " + self.selection(named["name"], 0) + " }"
        return f"{kind} {{ {field['name']}{self.arguments(field)} {inner} }}"


def _stable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


async def test_another_tenants_key_reads_changes_and_hears_nothing(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        async with server.agent.db.session() as session:
            await add_api_key(session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b")
        await server.agent.reload_keys()
        a, b = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        body = {"service_id": A_SERVICE, "health_url": "http://127.0.0.1:9/health"}
        assert (await a.post("/api/services/register", json=body)).status_code == 201
        # escalated incidents with actions: history no heal loop touches
        await seed_history(
            server.agent.db, service_ids=[A_SERVICE], incidents=6, open_incidents=2, actions=3
        )
        silence = {"matchers": {"service_id": A_SERVICE}, "duration": 600}
        silence["comment"] = "a-only-silence-comment"
        assert (await a.post("/api/silences", json=silence)).status_code == 201
        pause = {"service_id": A_SERVICE, "reason": "a-only-pause-reason"}
        assert (await a.post("/api/automation/pause", json=pause)).status_code == 200
        incident_id = (await a.get("/api/incidents")).json()["data"][0]["id"]
        schema = (await gql(a, INTROSPECTION))["data"]["__schema"]
        walk = Walk(schema, str(incident_id))

        async def read_all(client: Any) -> dict[str, Any]:
            answers = {}
            for field in walk.fields(schema["queryType"]["name"]):
                answer = await gql(client, walk.document("query", field))
                assert "errors" not in answer or all(
                    e["extensions"]["code"] != "INTERNAL_ERROR" for e in answer["errors"]
                ), answer
                answers[field["name"]] = answer.get("data")
            return answers

        seen_by_a = await read_all(a)
        text_a = json.dumps(seen_by_a)
        assert all(mark in text_a for mark in A_MARKS)  # the walk reaches A's data
        assert str(incident_id) in text_a
        seen_by_b = json.dumps(await read_all(b))
        assert not any(mark in seen_by_b for mark in A_MARKS), seen_by_b
        assert f'"id": "{incident_id}"' not in seen_by_b
        print(f"\nqueries walked: {len(walk.fields(schema['queryType']['name']))}")

        # mutations with A's ids change nothing of A's
        async with server.agent.db.session() as session:
            audited = select(func.count()).select_from(AuditEntry)
            a_audit = (
                await session.execute(audited.where(AuditEntry.tenant_id == "default"))
            ).scalar_one()
        mutations = walk.fields(schema["mutationType"]["name"])
        for field in mutations:
            answer = await gql(b, walk.document("mutation", field))
            for error in answer.get("errors", []):
                assert error["extensions"]["code"] != "INTERNAL_ERROR", answer
        assert _stable(await read_all(a)) == _stable(seen_by_a)
        async with server.agent.db.session() as session:
            after = (
                await session.execute(audited.where(AuditEntry.tenant_id == "default"))
            ).scalar_one()
        assert after == a_audit
        print(f"mutations walked: {len(mutations)}")

        # subscriptions hear none of A's events, while A's own does
        subscriptions = walk.fields(schema["subscriptionType"]["name"])
        async with (
            GraphWs(server.url, TEST_KEY) as mine,
            GraphWs(server.url, OTHER_TENANT_KEY) as theirs,
        ):
            assert (await mine.receive(10))["type"] == "connection_ack"
            assert (await theirs.receive(10))["type"] == "connection_ack"
            before = server.agent.bus.feed_stats()[0]
            await mine.subscribe("subscription { events { type } }")
            for n, field in enumerate(subscriptions):
                await theirs.subscribe(walk.document("subscription", field), op=str(n))
            await subscribed(server, before + 1 + len(subscriptions))
            more = {"service_id": "a-second-service", "health_url": "http://127.0.0.1:9/health"}
            assert (await a.post("/api/services/register", json=more)).status_code == 201
            assert (await mine.receive(10))["type"] == "next"
            with pytest.raises(TimeoutError):
                print("tenant b heard", await theirs.receive(2))
        print(f"subscriptions walked: {len(subscriptions)}")
        await a.aclose()
        await b.aclose()
