"""Plugin checks and executors inside a running agent: a certificate about to expire
tells people and runs nothing; a plugin that raises or hangs is contained and its
failure is on the incident's timeline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from pydantic import BaseModel

from selfheal import plugin_api
from selfheal.configfile import parse_config
from selfheal.plugins import load_plugins
from selfheal.testing import AgentServer, free_port
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for
from tests.integration.test_checks import make_certificate, tls_server


class Receiver:
    """A webhook channel's receiving end on loopback."""

    def __init__(self) -> None:
        self.port = free_port()
        self.bodies: list[dict[str, Any]] = []

    async def _hook(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


async def test_expiring_certificate_notifies_people_and_runs_nothing(
    tmp_path: Path, sqlite_url: str, make_settings: Any, receiver: Receiver
) -> None:
    cert, key = make_certificate(tmp_path, 3)
    server = await tls_server(cert, key)
    port = server.sockets[0].getsockname()[1]
    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "shop-tls",
                        "retries": 2,
                        "check": {
                            "type": "tls",
                            "address": f"127.0.0.1:{port}",
                            "ca_file": str(cert),
                            "warn_days": 14,
                        },
                    }
                ],
                "notifications": [
                    {
                        "name": "ops",
                        "type": "webhook",
                        "url": f"http://127.0.0.1:{receiver.port}/hook",
                    }
                ],
            }
        )
    )
    try:
        async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=0.3), config) as agent:
            client = api_client(agent.url)

            async def escalated() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="shop-tls")
                return found[0] if found and found[0]["status"] == "escalated" else None

            incident = await wait_for(escalated, 20)
            assert incident["type"] == "cert_expiring"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            assert detail["actions"] == []
            await wait_for(lambda: _true(bool(receiver.bodies)), 10)
            assert receiver.bodies[0]["event"] == "incident.escalated"
            assert "expires in 3.0 days" in json.dumps(detail)
            await client.aclose()
    finally:
        server.close()


async def _true(value: bool) -> bool:
    return value


class NoOptions(BaseModel):
    pass


class HangingExecutor:
    api_version: ClassVar[int] = plugin_api.API_VERSION
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, context: plugin_api.PluginContext) -> None:
        pass

    async def execute(self, request: plugin_api.ActionRequest) -> plugin_api.ActionResult:
        await asyncio.sleep(3600)  # ignores its timeout
        raise AssertionError("not reached")


class RaisingCheck:
    api_version: ClassVar[int] = plugin_api.API_VERSION
    options_model: ClassVar[type[BaseModel]] = NoOptions

    def __init__(self, context: plugin_api.PluginContext) -> None:
        pass

    async def check(self, target: plugin_api.CheckTarget) -> plugin_api.CheckResult:
        raise RuntimeError("probe plugin bug")


async def test_a_plugin_that_raises_or_hangs_is_contained_and_on_the_timeline(
    sqlite_url: str, make_settings: Any
) -> None:
    plugins = load_plugins()
    plugins.checks["buggy"] = RaisingCheck
    plugins.executors["stuck"] = HangingExecutor
    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "legacy",
                        "retries": 2,
                        "check": {"type": "buggy"},
                        "remediation": {"restart": {"executor": "stuck", "timeout": "0.5s"}},
                    }
                ],
                "policies": {"max_attempts": 1},
            }
        )
    )
    async with AgentServer(
        make_settings(sqlite_url, CHECK_INTERVAL=0.3), config, plugins=plugins
    ) as agent:
        client = api_client(agent.url)

        async def escalated() -> dict[str, Any] | None:
            found = await list_incidents(client, service_id="legacy")
            return found[0] if found and found[0]["status"] == "escalated" else None

        incident = await wait_for(escalated, 30)
        detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
        text = json.dumps(detail)
        assert "buggy check raised RuntimeError: probe plugin bug" in text
        action = detail["actions"][0]
        assert action["executor"] == "stuck"
        assert action["status"] == "failed"
        assert "no result within 0.5s" in action["result"]["detail"]
        assert any("no result within 0.5s" in step["message"] for step in detail["timeline"])
        # the agent carries on probing
        assert agent.agent.scheduler.probes > 3
        await client.aclose()


class ChatOptions(BaseModel):
    url: str


class ChatChannel:
    api_version: ClassVar[int] = plugin_api.API_VERSION
    options_model: ClassVar[type[BaseModel]] = ChatOptions

    def __init__(self, context: plugin_api.PluginContext) -> None:
        self._http, self._options = context.http, context.options

    async def deliver(self, notice: plugin_api.Notice, *, timeout: float) -> None:
        body = {"text": notice.title, "severity": notice.severity, "key": notice.dedup_key}
        response = await self._http.post(self._options.url, json=body, timeout=timeout)
        response.raise_for_status()


async def test_a_channel_plugin_gets_its_options_and_the_public_notice(
    receiver: Receiver,
) -> None:
    import httpx

    from selfheal.actions.channels import Notice
    from selfheal.actions.notify import Notifier
    from selfheal.configfile import NotificationConfig
    from selfheal.types import Severity

    plugins = load_plugins()
    plugins.channels["chat"] = ChatChannel
    config = NotificationConfig(
        name="team-chat", type="chat", options={"url": f"http://127.0.0.1:{receiver.port}/hook"}
    )
    async with httpx.AsyncClient() as client:
        notifier = Notifier(client, [config], plugins)
        notice = Notice(
            kind="trigger",
            tenant_id="default",
            group_id=4,
            title="shop down",
            severity=Severity.HIGH,
            reason="refused",
            services=["shop"],
        )
        assert await notifier.send(notice) == ["team-chat"]
        # PluginContext.notify: a plugin's own notice reaches the channels too
        public = plugin_api.Notice(
            kind="update",
            title="disk 91% full",
            severity="high",
            reason="from a plugin",
            services=("shop",),
            dedup_key="k",
        )
        assert await notifier.notify_plugin(public) == ["team-chat"]
    assert receiver.bodies[0] == {
        "text": "[selfheal] Escalated: shop down",
        "severity": "high",
        "key": notice.dedup_key,
    }
    assert receiver.bodies[1]["text"] == "[selfheal] Update: disk 91% full"


class Restarter:
    """An in-test executor plugin that starts the TCP service again."""

    api_version: ClassVar[int] = plugin_api.API_VERSION
    options_model: ClassVar[type[BaseModel] | None] = None
    start: ClassVar[Any] = None

    def __init__(self, context: plugin_api.PluginContext) -> None:
        pass

    async def execute(self, request: plugin_api.ActionRequest) -> plugin_api.ActionResult:
        await Restarter.start()
        return plugin_api.ActionResult(True, f"restarted {request.service.service_id}")


async def test_tcp_service_that_refuses_is_a_connect_refused_incident_and_is_restarted(
    sqlite_url: str, make_settings: Any
) -> None:
    port = free_port()
    servers: list[asyncio.Server] = []

    async def start() -> None:
        servers.append(await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port))

    Restarter.start = start
    await start()
    plugins = load_plugins()
    plugins.executors["restarter"] = Restarter
    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "db",
                        "retries": 2,
                        "check": {"type": "tcp", "address": f"127.0.0.1:{port}"},
                        "remediation": {"restart": {"executor": "restarter"}},
                    }
                ]
            }
        )
    )
    try:
        async with AgentServer(
            make_settings(sqlite_url, CHECK_INTERVAL=0.3), config, plugins=plugins
        ) as agent:
            client = api_client(agent.url)

            async def up() -> bool:
                return bool((await client.get("/api/services/db")).json()["status"] == "up")

            await wait_for(up, 10)
            servers[0].close()
            await servers[0].wait_closed()

            async def resolved() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="db")
                return found[0] if found and found[0]["status"] == "resolved" else None

            incident = await wait_for(resolved, 20)
            assert incident["type"] == "connect_refused"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            assert detail["actions"][0]["executor"] == "restarter"
            assert detail["actions"][0]["outcome"] == "recovered"
            await client.aclose()
    finally:
        for server in servers:
            server.close()


async def test_exec_check_json_metrics_meet_the_thresholds(
    sqlite_url: str, make_settings: Any
) -> None:
    import sys

    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "batch",
                        "retries": 2,
                        "thresholds": {"cpu": 80},
                        "check": {
                            "type": "exec",
                            "command": [sys.executable, "-c", "print('{\"cpu\": 97}')"],
                        },
                    }
                ],
                "policies": {"dry_run": True},
            }
        )
    )
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=0.3), config) as agent:
        client = api_client(agent.url)

        async def opened() -> dict[str, Any] | None:
            found = await list_incidents(client, service_id="batch")
            return found[0] if found else None

        incident = await wait_for(opened, 20)
        assert incident["type"] == "high_cpu"
        await client.aclose()
