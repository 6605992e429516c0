"""Keys with scopes, expiry, revocation and rotation, against the real agent.

Walks the served OpenAPI document, so a route added later is covered without
editing this test: a read key changes nothing (403), a write key administers no key.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import httpx
from sqlalchemy import select

from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.storage.tables import AuditEntry
from selfheal.testing import AgentServer
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client
from tests.helpers import wait_for

NEVER_ENDING = {("GET", "/api/events/stream")}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, items in document["paths"].items()
        for method, operation in items.items()
        if operation.get("security")  # routes that take a key
    ]


def _url(path: str, operation: dict[str, Any]) -> str:
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            path = path.replace("{" + param["name"] + "}", "1")
    return path


async def _make_key(admin: httpx.AsyncClient, scope: str, **extra: Any) -> dict[str, Any]:
    answer = await admin.post("/api/keys", json={"name": f"{scope}-key", "scope": scope} | extra)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def test_a_read_key_changes_nothing_and_reads_everything(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        admin = api_client(server.url)
        document = (await admin.get("/openapi.json")).json()
        reader = api_client(server.url, (await _make_key(admin, "read"))["key"])
        writer = api_client(server.url, (await _make_key(admin, "write"))["key"])
        changing = [op for op in _operations(document) if op[0] != "GET"]
        assert len(changing) >= 15  # the walk reaches the routes
        for method, path, operation in changing:
            answer = await reader.request(method, _url(path, operation), json={})
            assert answer.status_code == 403, f"{method} {path}: {answer.text}"
            error = answer.json()["error"]
            assert error["code"] == "forbidden"
            assert "write scope" in error["message"] or "admin scope" in error["message"]
        for method, path, operation in _operations(document):
            if method != "GET" or (method, path) in NEVER_ENDING or path.startswith("/api/keys"):
                continue
            answer = await reader.get(_url(path, operation))
            assert answer.status_code not in (401, 403), f"GET {path}: {answer.text}"
            required = [p for p in operation.get("parameters", []) if p.get("required")]
            if not required:
                assert answer.status_code == 200, f"GET {path}: {answer.text}"
        # key administration needs admin: a write key neither lists nor creates keys
        for method, path, operation in _operations(document):
            if path.startswith("/api/keys"):
                answer = await writer.request(method, _url(path, operation), json={})
                assert answer.status_code == 403, f"{method} {path}: {answer.text}"
                assert "admin scope" in answer.json()["error"]["message"]
        # a write key changes things
        silence = {"matchers": {"service_id": "shop"}, "duration": 60, "comment": "deploy"}
        assert (await writer.post("/api/silences", json=silence)).status_code == 201
        for client in (admin, reader, writer):
            await client.aclose()


async def test_a_revoked_key_is_refused_within_5_seconds(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url)) as server:
        admin = api_client(server.url)
        first, second = await _make_key(admin, "read"), await _make_key(admin, "read")
        user = api_client(server.url, first["key"])
        assert (await user.get("/api/services")).status_code == 200
        assert (await admin.delete(f"/api/keys/{first['id']}")).status_code == 204
        assert (await user.get("/api/services")).status_code == 401  # this replica: at once
        # revoked elsewhere (the CLI, another replica): the next key reload sees it
        other = api_client(server.url, second["key"])
        assert (await other.get("/api/services")).status_code == 200
        async with server.agent.db.session() as session:
            await tenants_repo.revoke_key(session=session, tenant_id="default", key_id=second["id"])
        revoked_at = time.monotonic()

        async def refused() -> bool:
            return (await other.get("/api/services")).status_code == 401

        await wait_for(refused, 5.0, interval=0.05)
        print(f"\nrevoked by another process: refused after {time.monotonic() - revoked_at:.2f} s")
        # keys from API_KEYS are managed there, not through the API
        listed = (await admin.get("/api/keys")).json()["data"]
        env_key = next(k for k in listed if k["source"] == "env")
        assert env_key["scope"] == "admin"
        answer = await admin.delete(f"/api/keys/{env_key['id']}")
        assert answer.status_code == 409
        assert "API_KEYS" in answer.json()["error"]["message"]
        for client in (admin, user, other):
            await client.aclose()


async def test_rotation_keeps_the_old_key_until_the_overlap_ends(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url)) as server:
        admin = api_client(server.url)
        old = await _make_key(admin, "write")
        answer = await admin.post(f"/api/keys/{old['id']}/rotate", json={"overlap": "2s"})
        rotated_at = time.monotonic()
        assert answer.status_code == 200, answer.text
        rotated = answer.json()
        assert rotated["new"]["scope"] == "write"
        assert rotated["new"]["key"] != old["key"]
        assert rotated["old"]["expires_at"] is not None
        old_client = api_client(server.url, old["key"])
        new_client = api_client(server.url, rotated["new"]["key"])
        assert (await old_client.get("/api/services")).status_code == 200
        assert (await new_client.get("/api/services")).status_code == 200

        async def old_refused() -> bool:
            return (await old_client.get("/api/services")).status_code == 401

        await wait_for(old_refused, 10.0, interval=0.05)
        assert time.monotonic() - rotated_at >= 1.9  # not before the overlap ended
        assert (await new_client.get("/api/services")).status_code == 200
        for client in (admin, old_client, new_client):
            await client.aclose()


async def test_an_expired_key_is_refused(database_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(database_url)) as server:
        admin = api_client(server.url)
        soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
        user = api_client(server.url, (await _make_key(admin, "read", expires_at=soon))["key"])
        assert (await user.get("/api/services")).status_code == 200

        async def refused() -> bool:
            return (await user.get("/api/services")).status_code == 401

        await wait_for(refused, 10.0, interval=0.05)
        past = (datetime.now(UTC) - timedelta(seconds=10)).isoformat()
        answer = await admin.post("/api/keys", json={"name": "x", "expires_at": past})
        assert answer.status_code == 422
        assert "future" in answer.json()["error"]["message"]
        await admin.aclose()
        await user.aclose()


async def test_keys_are_listed_without_secrets_and_only_in_their_tenant(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url)) as server:
        async with server.agent.db.session() as session:
            theirs_info = await tenants_repo.add_api_key(
                session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b-admin"
            )
        await server.agent.reload_keys()
        mine, theirs = api_client(server.url), api_client(server.url, OTHER_TENANT_KEY)
        created = await _make_key(mine, "read")
        listing = await mine.get("/api/keys")
        assert listing.status_code == 200
        for secret in (TEST_KEY, created["key"], OTHER_TENANT_KEY):
            assert secret not in listing.text
            assert tenants_repo.hash_key(secret) not in listing.text
        ids = {k["id"] for k in listing.json()["data"]}
        assert created["id"] in ids
        assert theirs_info.id not in ids
        assert set(listing.json()["data"][0]) == {
            "id",
            "name",
            "scope",
            "source",
            "created_at",
            "expires_at",
            "last_used_at",
        }
        # tenant B neither sees nor revokes nor rotates tenant A's keys
        assert created["id"] not in {
            k["id"] for k in (await theirs.get("/api/keys")).json()["data"]
        }
        assert (await theirs.delete(f"/api/keys/{created['id']}")).status_code == 404
        rotate = await theirs.post(f"/api/keys/{created['id']}/rotate", json={})
        assert rotate.status_code == 404
        assert (await mine.delete(f"/api/keys/{theirs_info.id}")).status_code == 404
        user = api_client(server.url, created["key"])
        assert (await user.get("/api/services")).status_code == 200  # still valid

        async def last_used() -> Any:
            listed = (await mine.get("/api/keys")).json()["data"]
            return next(k for k in listed if k["id"] == created["id"])["last_used_at"]

        assert await wait_for(last_used, 10.0)  # stored at the next key reload
        for client in (mine, theirs, user):
            await client.aclose()


async def test_every_change_is_audited_with_the_key_id(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        admin = api_client(server.url)
        created = await _make_key(admin, "write")
        writer = api_client(server.url, created["key"])
        body = {"service_id": "shop", "health_url": "http://127.0.0.1:9/health"}
        assert (await writer.post("/api/services/register", json=body)).status_code == 201
        assert (await writer.delete("/api/services/shop")).status_code == 204
        assert (await writer.delete("/api/services/shop")).status_code == 404  # no change
        assert (await writer.get("/api/services")).status_code == 200  # not a change
        async with server.agent.db.session() as session:
            rows = (
                (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().all()
            )
        by_key = [r for r in rows if r.detail.get("key_id") == created["id"]]
        assert [(r.verb, r.target) for r in by_key] == [
            ("api.post", "/api/services/register"),
            ("api.delete", "/api/services/shop"),
        ]
        assert all(r.actor == "write-key" for r in by_key)
        # the key's own creation is audited with the admin key's id
        assert any(r.target == "/api/keys" and r.detail.get("key_id") for r in rows)
        await admin.aclose()
        await writer.aclose()


async def test_live_feeds_of_a_revoked_key_end_within_5_seconds(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        admin = api_client(server.url)
        sse_key, ws_key = await _make_key(admin, "read"), await _make_key(admin, "read")
        ws_url = server.url.replace("http://", "ws://") + "/api/events/ws"
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream(
                "GET", f"{server.url}/api/events/stream", headers={"X-API-Key": sse_key["key"]}
            ) as sse,
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url) as ws,
        ):
            assert sse.status_code == 200
            await ws.send_json({"api_key": ws_key["key"]})
            assert (await ws.receive_json(timeout=5))["type"] == "connected"
            revoked_at = time.monotonic()
            for created in (sse_key, ws_key):
                assert (await admin.delete(f"/api/keys/{created['id']}")).status_code == 204

            async def sse_ended() -> list[str]:
                return [line async for line in sse.aiter_lines()]

            lines = await asyncio.wait_for(sse_ended(), 5.0)
            assert "event: error" in lines
            assert (await ws.receive_json(timeout=5))["error"]["code"] == "unauthorized"
            closing = await ws.receive(timeout=5)
            assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 4401
            assert time.monotonic() - revoked_at < 5.0
        await admin.aclose()
