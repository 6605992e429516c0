"""The dashboard's page and the JSON routes behind it: served offline, tenant-scoped,
in the OpenAPI document, correct on SQLite and PostgreSQL, and never leaking a secret."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

import selfheal.web
from selfheal.api.schemas import FleetPublic
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import samples as samples_repo
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.testing import AgentServer
from tests.conftest import OTHER_TENANT_KEY, TEST_KEY, api_client

WEB = Path(selfheal.web.__file__).parent


async def test_dashboard_page_is_served_without_a_key_and_loads_only_its_own_files(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server, httpx.AsyncClient() as client:
        page = await client.get(f"{server.url}/dashboard")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "connect-src 'self'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert '<meta name="selfheal-api-key-header" content="X-API-Key">' in page.text
        assert TEST_KEY not in page.text
        assets = re.findall(r'(?:src|href)="(/dashboard/static/[^"?]+)', page.text)
        assert set(assets) == {"/dashboard/static/app.js", "/dashboard/static/dashboard.css"}
        for path in assets:
            asset = await client.get(server.url + path)
            assert asset.status_code == 200
            assert asset.headers["cache-control"] == "no-cache"
        script = await client.get(f"{server.url}/dashboard/static/app.js")
        assert "javascript" in script.headers["content-type"]
        slash = await client.get(f"{server.url}/dashboard/")
        assert slash.status_code == 308
        assert slash.headers["location"] == "/dashboard"
        missing = await client.get(f"{server.url}/dashboard/static/../pages.py")
        assert missing.status_code == 404
    # offline: nothing points outside the agent (no CDN, no fonts, no analytics)
    for path in [WEB / "templates" / "dashboard.html", *sorted((WEB / "static").iterdir())]:
        text = path.read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path.name
        assert "innerHTML" not in text, path.name  # text goes in as text, never as markup


async def test_fleet_is_tenant_scoped_and_has_what_a_tile_needs(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        await _second_tenant(server)
        async with api_client(server.url) as a, api_client(server.url, OTHER_TENANT_KEY) as b:
            # another tenant may not point at the agent's loopback: a public address
            for client, sid, tags, host in (
                (a, "a-api", ["api", "critical"], "127.0.0.1"),
                (b, "b-api", ["db"], "93.184.215.14"),
            ):
                response = await client.post(
                    "/api/services/register",
                    json={
                        "service_id": sid,
                        "name": sid.upper(),
                        "health_url": f"http://{host}:9/health",
                        "secret": "a-very-secret-value",
                        "tags": tags,
                    },
                )
                assert response.status_code == 201
            fleet = (await a.get("/api/fleet")).json()
            assert [s["service_id"] for s in fleet["services"]] == ["a-api"]
            tile = fleet["services"][0]
            assert tile["name"] == "A-API"
            assert tile["tags"] == ["api", "critical"]
            assert set(tile) >= {"status", "last_check_at", "response_ms", "recent_ms", "recent_ok"}
            assert fleet["tags"] == ["api", "critical"]
            assert fleet["count"] == 1
            assert abs(fleet["at"] - datetime.now(UTC).timestamp()) < 5
            assert "a-very-secret-value" not in (await a.get("/api/fleet")).text
            assert [s["service_id"] for s in (await b.get("/api/fleet")).json()["services"]] == [
                "b-api"
            ]
        async with httpx.AsyncClient() as anonymous:
            for path in ("/api/fleet", "/api/actions", "/api/charts"):
                denied = await anonymous.get(server.url + path)
                assert denied.status_code == 401
                assert denied.json()["error"]["code"] == "unauthorized"


async def test_fleet_pages_follow_the_cursor_in_service_id_order(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server, api_client(server.url) as client:
        ids = [f"svc-{n:02d}" for n in range(25)]
        for sid in reversed(ids):
            body = {"service_id": sid, "health_url": "http://127.0.0.1:9/health", "tags": [sid]}
            assert (await client.post("/api/services/register", json=body)).status_code == 201
        assert (await client.delete("/api/services/svc-13")).status_code in (200, 204)
        ids.remove("svc-13")
        seen: list[str] = []
        pages = 0
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/fleet", params=params)).json()
            pages += 1
            FleetPublic.model_validate(page, strict=True)  # the documented shape, exactly
            assert page["total"] == 24
            assert sum(page["by_status"].values()) == 24
            assert page["count"] == len(page["services"]) <= 10
            assert page["tags"] == [s["service_id"] for s in page["services"]]
            seen += [s["service_id"] for s in page["services"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids
        assert pages == 3
        first = (await client.get("/api/fleet")).json()  # the dashboard's first page: all
        assert [s["service_id"] for s in first["services"]] == ids
        assert first["next_cursor"] is None
        bad = await client.get("/api/fleet", params={"limit": 1001})
        assert bad.status_code in (400, 422)


async def test_new_routes_are_in_the_openapi_document(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server, httpx.AsyncClient() as client:
        document = (await client.get(f"{server.url}/openapi.json")).json()
    for path in ("/api/fleet", "/api/actions", "/api/charts"):
        operation = document["paths"][path]["get"]
        assert operation["security"] == [{"ApiKey": []}]
        assert "401" in operation["responses"]
    assert "/dashboard" not in document["paths"]
    ranges = document["paths"]["/api/charts"]["get"]["parameters"][0]
    assert ranges["name"] == "range"


async def test_actions_and_charts_over_seeded_history(
    database_url: str, make_settings: Any
) -> None:
    now = datetime.now(UTC)
    async with AgentServer(make_settings(database_url)) as server:
        await _second_tenant(server)
        async with server.agent.db.session() as session:
            await _seed(session, "default", now)
            await _seed(session, "team-b", now, only_noise=True)
        async with api_client(server.url) as client:
            page = (await client.get("/api/actions", params={"limit": 2})).json()
            assert [a["action"] for a in page["data"]] == ["rollback", "restart"]
            assert page["data"][0]["incident_type"] == "http_error"
            assert page["data"][1]["outcome"] == "recovered"
            assert page["data"][1]["recovery_seconds"] == 4.0
            older = (
                await client.get("/api/actions", params={"cursor": page["next_cursor"]})
            ).json()
            assert [a["action"] for a in older["data"]] == ["restart"]
            assert older["next_cursor"] is None
            bad = await client.get("/api/actions", params={"cursor": "x"})
            assert bad.status_code == 400
            only = (await client.get("/api/actions", params={"service_id": "pay"})).json()
            assert {a["service_id"] for a in only["data"]} == {"pay"}

            charts = (await client.get("/api/charts", params={"range": "1h"})).json()
            assert charts["bucket_seconds"] == 60
            assert len(charts["buckets"]) == 60
            assert charts["incidents_opened"] == 3
            # resolved in 120 s and 60 s
            assert charts["mttr_seconds"] == 90.0
            assert sum(b["resolved"] for b in charts["buckets"]) == 2
            # shop: 60 of 60 probes ok; pay: 30 of 60 over the two minutes
            assert charts["availability"] == round(90 / 120, 5)
            by_service = {s["service_id"]: s for s in charts["services"]}
            assert charts["services"][0]["service_id"] == "pay"  # least available first
            assert by_service["pay"]["availability"] == 0.5
            assert by_service["shop"]["availability"] == 1.0
            assert by_service["shop"]["mean_response_ms"] == 20.0
            by_pair = {(a["incident_type"], a["action"]): a for a in charts["actions"]}
            assert by_pair["http_error", "restart"]["success_rate"] == 0.5
            assert by_pair["http_error", "restart"]["mean_recovery_seconds"] == 4.0
            assert by_pair["http_error", "rollback"]["runs"] == 1
            assert by_pair["http_error", "rollback"]["success_rate"] is None  # not verified
            wide = (await client.get("/api/charts", params={"range": "30d"})).json()
            assert wide["incidents_opened"] == 4  # the one from 3 days ago counts here
            assert len(wide["buckets"]) == 60
            invalid = await client.get("/api/charts", params={"range": "2y"})
            assert invalid.status_code == 422


async def _second_tenant(server: AgentServer) -> None:
    async with server.agent.db.session() as session:
        await tenants_repo.add_api_key(
            session=session, tenant_id="team-b", key=OTHER_TENANT_KEY, name="b"
        )
    await server.agent.reload_keys()


async def _seed(session: Any, tenant: str, now: datetime, *, only_noise: bool = False) -> None:
    """Incidents, actions and minute rollups of a tenant in the last hour (and one older)."""
    minute = now.replace(second=0, microsecond=0)
    rollups = [
        {
            "tenant_id": tenant,
            "service_id": "noise" if only_noise else service,
            "minute": minute - timedelta(minutes=m),
            "probes": 30,
            "ok": ok,
            "response_ms_sum": 600.0,
            "response_ms_max": 40.0,
            "cpu_max": None,
            "memory_max": None,
            "error_rate_max": None,
        }
        for service, ok in (("shop", 30), ("pay", 15))
        for m in (2, 3)
    ]
    await samples_repo.merge_rollups(session=session, rows=rollups)
    if only_noise:
        await incidents_repo.open_incident(
            session=session,
            tenant_id=tenant,
            service_id="noise",
            type="timeout",
            severity="low",
            summary="",
            details={},
            at=now - timedelta(minutes=5),
        )
        return
    opened = []
    for service, kind, ago, resolved_after in (
        ("shop", "http_error", 30, 120),
        ("pay", "timeout", 20, 60),
        ("pay", "high_memory", 10, None),
        ("shop", "timeout", 3 * 24 * 60, None),
    ):
        row, _ = await incidents_repo.open_incident(
            session=session,
            tenant_id=tenant,
            service_id=service,
            type=kind,
            severity="high",
            summary=f"{service} {kind}",
            details={},
            at=now - timedelta(minutes=ago),
        )
        opened.append(row)
        if resolved_after is not None:
            await incidents_repo.transition(
                session=session,
                tenant_id=tenant,
                incident_id=row.id,
                to="resolved",
                allowed_from=["open"],
                at=now - timedelta(minutes=ago) + timedelta(seconds=resolved_after),
            )
    for n, (service, incident, action, outcome) in enumerate(
        (
            ("shop", opened[0], "restart", "not_recovered"),
            ("shop", opened[0], "restart", "recovered"),
            ("pay", opened[0], "rollback", None),
        )
    ):
        row = await actions_repo.create_action(
            session=session,
            tenant_id=tenant,
            incident_id=incident.id,
            service_id=service,
            incident_type="http_error",
            action=action,
            executor="webhook",
            params={},
            idempotency_key=f"{tenant}:{n}",
            decision={"reason": "test", "confidence": 0.5},
        )
        assert row is not None
        await actions_repo.finish_action(
            session=session, tenant_id=tenant, action_id=row.id, status="succeeded", result={}
        )
        if outcome is not None:
            await actions_repo.record_outcome(
                session=session,
                tenant_id=tenant,
                action_id=row.id,
                outcome=outcome,
                recovery_seconds=4.0 if outcome == "recovered" else None,
            )
