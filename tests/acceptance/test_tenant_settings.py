"""A tenant's own guard rails and channels act on its incidents only; secrets stay hidden.

Two tenants on one agent, each with a failing loopback service: tenant B makes
restarts wait for approval and pages its own Slack-format receiver through the
API; the default tenant keeps the config file's rules and webhook channel.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select

from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import TenantChannel
from selfheal.testing import AgentServer, FakeService
from tests.acceptance.test_guard_rails import (
    all_up,
    config,
    first_incident,
    incident_detail,
    running,
    service,
    webhook_channel,
)
from tests.conftest import api_client
from tests.fakes import NotificationSinks
from tests.helpers import wait_for

B_ADMIN, B_READ, B_WRITE = "team-b-admin-key-000001", "team-b-read-key-0000001", "team-b-write-0001"
TOKEN = "T0KEN-of-team-b-slack-hook"


async def _b_keys(server: AgentServer) -> None:
    async with server.agent.db.session() as session:
        for key, scope in ((B_ADMIN, "admin"), (B_READ, "read"), (B_WRITE, "write")):
            await add_api_key(
                session=session, tenant_id="team-b", key=key, name=f"b-{scope}", scope=scope
            )
    await server.agent.reload_keys()


async def test_a_tenants_policies_and_channels_act_on_its_incidents_only(
    database_url: str, make_settings: Any
) -> None:
    sinks = await NotificationSinks().start()
    mine, theirs = FakeService("a-shop", heals=False), FakeService("b-shop", heals=False)
    cfg = config(
        [service(mine), service(theirs, tenant="team-b")],
        tenants={"team-b": {"outbound_allow": ["127.0.0.0/8"]}},
        policies={"max_attempts": 1, "verify_timeout": "1s"},
        notifications=webhook_channel(sinks),  # the default tenant's (it names no tenant)
    )
    try:
        async with (
            running([mine, theirs]),
            AgentServer(make_settings(database_url), cfg) as server,
        ):
            await _b_keys(server)
            a, b = api_client(server.url), api_client(server.url, B_ADMIN)
            await all_up(a, 1)
            await all_up(b, 1)
            # only an admin key of B changes B's settings
            for key in (B_READ, B_WRITE):
                other = api_client(server.url, key)
                refused = await other.put("/api/tenant/policies", json={"dry_run": True})
                assert refused.status_code == 403, refused.text
                assert "admin scope" in refused.json()["error"]["message"]
                catalog = {"entries": {"http_error": ["notify"]}}
                assert (await other.put("/api/catalog", json=catalog)).status_code == 403
                assert (await other.get("/api/tenant/policies")).status_code == 200
                await other.aclose()
            approval = {"approval": {"actions": ["restart"], "timeout": "1s"}}
            answer = await b.put("/api/tenant/policies", json=approval)
            assert answer.status_code == 200, answer.text
            assert answer.json()["effective"]["approval"]["actions"] == ["restart"]
            hook = {"type": "slack", "url": f"{sinks.url('slack')}?token={TOKEN}"}
            answer = await b.put("/api/tenant/channels/b-pager", json=hook)
            assert answer.status_code == 201, answer.text
            assert TOKEN not in answer.text
            assert "/slack" not in answer.text
            a_catalog = (await a.get("/api/catalog")).json()["entries"]
            catalog = {"entries": {"high_memory": ["notify", "restart"]}}
            changed = await b.put("/api/catalog", json=catalog)
            assert [e["action"] for e in changed.json()["entries"]["high_memory"]] == [
                "notify",
                "restart",
            ]
            # B's changes leave A's rules, catalog and channels alone
            assert (await a.get("/api/catalog")).json()["entries"] == a_catalog
            a_policies = (await a.get("/api/tenant/policies")).json()
            assert a_policies["effective"]["approval"]["actions"] == []
            assert (await a.get("/api/policies")).json()["approval"]["actions"] == []
            a_channels = (await a.get("/api/tenant/channels")).json()["data"]
            assert [(c["name"], c["source"]) for c in a_channels] == [("oncall", "config")]
            assert a_channels[0]["settings"]["secret"] == "[redacted]"
            b_channels = (await b.get("/api/tenant/channels")).json()["data"]
            assert [(c["name"], c["source"]) for c in b_channels] == [("b-pager", "api")]
            assert b_channels[0]["settings"]["url"] == "http://127.0.0.1/[redacted]"

            mine.break_as("http_500")
            theirs.break_as("http_500")
            ours = await first_incident(a, "a-shop", status="escalated")
            held = await first_incident(b, "b-shop", status="escalated")
            detail = await incident_detail(b, held["id"])
            assert any(s["kind"] == "awaiting_approval" for s in detail["timeline"])
            assert theirs.calls == []  # B's approval rule held its restart
            assert mine.calls != []  # A's restart ran (and did not help)
            assert (await incident_detail(a, ours["id"]))["actions"] != []

            def paged(channel: str, body_service: str) -> bool:
                return any(body_service in repr(body) for body in sinks.of(channel))

            async def both_paged() -> bool:
                return paged("slack", "b-shop") and paged("webhook", "a-shop")

            await wait_for(both_paged, 15)
            await asyncio.sleep(0.5)
            assert not paged("slack", "a-shop")
            assert not paged("webhook", "b-shop")
            async with server.agent.db.session() as session:
                stored = (await session.execute(select(TenantChannel))).scalar_one()
            assert stored.tenant_id == "team-b"
            assert stored.secrets_encrypted
            assert TOKEN not in stored.secrets_encrypted
            assert TOKEN not in repr(stored.settings)
            # removed, B has no channel again; a config channel cannot be removed by A
            assert (await b.delete("/api/tenant/channels/b-pager")).status_code == 204
            assert (await b.get("/api/tenant/channels")).json()["data"] == []
            assert (await b.delete("/api/tenant/channels/b-pager")).status_code == 404
            assert (await a.delete("/api/tenant/channels/oncall")).status_code == 409
            await a.aclose()
            await b.aclose()
        assert sinks.rejected == []
    finally:
        await sinks.stop()


async def test_a_channel_url_is_checked_like_a_service_url(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        await _b_keys(server)
        b = api_client(server.url, B_ADMIN)
        loopback = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "x" * 16}
        refused = await b.put("/api/tenant/channels/hook", json=loopback)
        assert refused.status_code == 422
        assert "url: " in refused.json()["error"]["message"]
        missing = await b.put("/api/tenant/channels/pd", json={"type": "pagerduty"})
        assert missing.status_code == 422
        assert "needs routing_key" in missing.json()["error"]["message"]
        unknown = await b.put("/api/tenant/channels/x", json={"type": "carrier-pigeon"})
        assert unknown.status_code == 422
        assert "no channel type 'carrier-pigeon'" in unknown.json()["error"]["message"]
        await b.aclose()
