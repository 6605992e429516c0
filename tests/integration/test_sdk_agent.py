"""The SDK against the real agent on loopback, with real services built on the SDK.

Sync agent + WSGI/Flask services run in threads; the async agent + FastAPI
under uvicorn in the test's loop. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from flask import Flask

from self_healing_sdk import AsyncSelfHealingAgent, HealthStatus, SelfHealingAgent
from self_healing_sdk.fastapi import router
from self_healing_sdk.flask import blueprint
from self_healing_sdk.signing import sign
from self_healing_sdk.wsgi import SelfHealingWSGI
from selfheal.api.app import create_app
from selfheal.runtime.agent import Agent
from selfheal.testing import AgentServer, free_port
from selfheal.types import ServiceKey
from tests.conftest import TEST_KEY, api_client
from tests.helpers import list_incidents, wait_for
from tests.sdk_services import asgi_server, wsgi_server

SECRET = "s3cret"  # the seed README's secret: short secrets work (and are logged as weak)


def sdk_agent(server: AgentServer, service_id: str, **options: Any) -> SelfHealingAgent:
    values: dict[str, Any] = {"api_key": TEST_KEY, "heartbeat_interval": 0.2} | options
    return SelfHealingAgent(server.url, "team-a", service_id, SECRET, **values)


async def test_register_heartbeat_healthy_and_callback(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        agent = sdk_agent(server, "shop")
        statuses: list[HealthStatus] = []
        agent.set_health_callback(statuses.append)
        agent.set_metrics_hook(lambda: {"queue_depth": 3})
        with wsgi_server(SelfHealingWSGI(agent=agent)) as url:
            registration = {
                "name": "Shop",
                "health_url": f"{url}/health",
                "webhook_url": f"{url}/webhook",
                "tags": ["critical"],
                "metadata": {"version": "1.0"},
            }
            first = await asyncio.to_thread(lambda: agent.register(**registration))
            again = await asyncio.to_thread(lambda: agent.register(**registration))
            assert (first.ok, first.created, again.ok, again.created) == (True, True, True, False)
            agent.start_monitoring()
            client = api_client(server.url)

            async def healthy() -> dict[str, Any] | None:
                services = (await client.get("/api/services")).json()["data"]
                shop = [s for s in services if s["service_id"] == "shop"]
                ok = shop and shop[0]["status"] == "up" and shop[0]["last_heartbeat"]
                return shop[0] if ok else None

            service = await wait_for(healthy, 5)
            assert service["metadata"] == {"version": "1.0", "user_id": "team-a"}
            assert service["has_secret"]
            await wait_for(lambda: _true(statuses and statuses[-1].agent is not None), 5)
            status = statuses[-1]
            assert status.agent_reachable
            assert status.healthy
            assert status.agent is not None
            assert (status.agent.status, status.agent.incidents) == ("up", ())
            assert status.extra == {"queue_depth": 3}
            # the service's own /health answers the same figures in the contract's JSON
            async with httpx.AsyncClient() as plain:
                health = (await plain.get(f"{url}/health")).json()
            assert health["status"] == "ok"
            assert health["queue_depth"] == 3
            assert health["selfheal"]["agent_status"] == "up"
            await asyncio.to_thread(agent.close)
            await client.aclose()


async def _true(value: Any) -> bool:
    return bool(value)


async def test_async_agent_with_fastapi_router(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        agent = AsyncSelfHealingAgent(
            server.url, "team-a", "orders", SECRET, api_key=TEST_KEY, heartbeat_interval=0.2
        )
        seen: list[HealthStatus] = []

        async def on_health(status: HealthStatus) -> None:
            seen.append(status)

        agent.set_health_callback(on_health)
        app = FastAPI()
        app.include_router(router(agent))
        async with asgi_server(app) as url:
            result = await agent.register("Orders", f"{url}/health", f"{url}/webhook")
            assert result.created
            async with agent:
                client = api_client(server.url)

                async def up() -> bool:
                    body = (await client.get("/api/services/orders")).json()
                    return bool(body["status"] == "up" and body["last_heartbeat"])

                await wait_for(up, 5)
                await wait_for(lambda: _true(seen and seen[-1].agent is not None), 5)
                assert seen[-1].healthy
                await client.aclose()


async def test_handler_results_and_failures_are_recorded_on_actions(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        agent = sdk_agent(server, "cache-svc")
        state = {"broken": False}
        calls: list[tuple[str, dict[str, Any], int]] = []

        @agent.action("clear_cache")
        def clear_cache(params: dict[str, Any], incident_id: int) -> None:
            calls.append(("clear_cache", params, incident_id))
            raise RuntimeError("cache volume is read-only")

        @agent.action("restart")
        def restart(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
            calls.append(("restart", params, incident_id))
            state["broken"] = False
            return {"restarted": True, "workers": 4}

        agent.set_metrics_hook(lambda: {"memory": 97.0} if state["broken"] else {})
        app = Flask(__name__)
        app.register_blueprint(blueprint(agent))
        with wsgi_server(app) as url:
            assert (
                await asyncio.to_thread(agent.register, "Cache", f"{url}/health", f"{url}/webhook")
            ).ok
            agent.start_monitoring()
            client = api_client(server.url)
            state["broken"] = True

            async def resolved() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="cache-svc")
                if not found or found[0]["status"] != "resolved":
                    return None
                detail: dict[str, Any] = (
                    await client.get(f"/api/incidents/{found[0]['id']}")
                ).json()
                return detail

            detail = await wait_for(resolved, 20)
            assert detail["type"] == "high_memory"
            failed, succeeded = detail["actions"]
            # the exception went back to the agent as a failed action, with its message
            assert (failed["action"], failed["status"]) == ("clear_cache", "failed")
            assert failed["result"]["detail"] == (
                "service answered 500: RuntimeError: cache volume is read-only"
            )
            assert failed["result"]["signed"] is True
            # the return value is the action's result
            assert (succeeded["action"], succeeded["status"]) == ("restart", "succeeded")
            assert succeeded["result"]["detail"] == (
                'service answered 200: {"restarted": true, "workers": 4}'
            )
            assert succeeded["outcome"] == "recovered"
            # each handler ran exactly once, with the incident's id
            assert [c[0] for c in calls] == ["clear_cache", "restart"]
            assert {c[2] for c in calls} == {detail["id"]}
            timeline = [step["kind"] for step in detail["timeline"]]
            assert "action_failed" in timeline
            assert timeline[-1] == "resolved"
            await asyncio.to_thread(agent.close)
            await client.aclose()


async def test_reported_errors_count_and_go_on_the_timeline(
    database_url: str, make_settings: Any
) -> None:
    # on both databases: the push answer and the timeline notes are the SDK's queries
    settings = make_settings(database_url, MAX_RETRIES=1, CHECK_INTERVAL=30.0)
    async with AgentServer(settings) as server:
        agent = sdk_agent(server, "billing", heartbeat_interval=0.3)
        failing = threading.Event()
        agent.set_metrics_hook(lambda: {"requests": 10})  # per heartbeat interval

        @agent.action("rollback")
        def rollback(params: dict[str, Any], incident_id: int) -> str:
            return "rolled back to 1.0"

        def produce_errors() -> None:  # about 9 errors per heartbeat interval
            while failing.is_set():
                for _ in range(3):
                    try:
                        raise ValueError("card declined: issuer timeout")
                    except ValueError as exc:
                        agent.report_error(exc)
                time.sleep(0.1)

        with wsgi_server(SelfHealingWSGI(agent=agent)) as url:
            registered = await asyncio.to_thread(
                agent.register, "Billing", f"{url}/health", f"{url}/webhook"
            )
            assert registered.ok
            agent.start_monitoring()
            client = api_client(server.url)
            failing.set()
            producer = threading.Thread(target=produce_errors, daemon=True)
            producer.start()

            async def noted() -> tuple[dict[str, Any], dict[str, Any]] | None:
                for incident in await list_incidents(client, service_id="billing"):
                    detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
                    steps = [s for s in detail["timeline"] if s["kind"] == "service_error"]
                    if steps:
                        return detail, steps[0]
                return None

            detail, step = await wait_for(noted, 10)
            # the pushed errors made the error rate: 0.9 is errors / requests
            assert detail["type"] == "high_error_rate"
            assert detail["details"]["observed"] >= 0.3
            assert "ValueError: card declined: issuer timeout" in step["message"]
            assert step["data"]["count"] >= 1
            assert "Traceback" in step["data"]["traceback"]
            # the service's own /health counts the reported errors too, so verification
            # sees the recovery only once they stop
            failing.clear()
            producer.join(5)

            async def all_resolved() -> list[dict[str, Any]] | None:
                found = await list_incidents(client, service_id="billing")
                done = all(i["status"] == "resolved" for i in found)
                return found if done else None

            await wait_for(all_resolved, 15)
            await asyncio.to_thread(agent.close)
            await client.aclose()


async def test_a_forgotten_service_registers_again(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        agent = sdk_agent(server, "ledger")
        with wsgi_server(SelfHealingWSGI(agent=agent)) as url:
            assert (await asyncio.to_thread(agent.register, "Ledger", f"{url}/health")).ok
            agent.start_monitoring()
            client = api_client(server.url)
            assert (await client.delete("/api/services/ledger")).status_code == 204

            async def back() -> bool:
                response = await client.get("/api/services/ledger")
                return response.status_code == 200 and response.json()["last_heartbeat"] is not None

            await wait_for(back, 5)
            await asyncio.to_thread(agent.close)
            await client.aclose()


async def test_stop_monitoring_with_a_healthy_health_url_brings_no_restart(
    sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_url, CHECK_INTERVAL=60.0, RETRY_DELAY=10.0)
    async with AgentServer(settings) as server:
        agent = sdk_agent(server, "pusher", heartbeat_interval=0.3)
        restarts: list[dict[str, Any]] = []
        agent.add_action(
            "restart", lambda params, _incident: restarts.append(params) or {"ok": True}
        )
        with wsgi_server(SelfHealingWSGI(agent=agent)) as url:
            registered = await asyncio.to_thread(
                agent.register,
                "Pusher",
                f"{url}/health",
                f"{url}/webhook",
                heartbeat_timeout=0.6,
            )
            assert registered.ok
            agent.start_monitoring()
            client = api_client(server.url)

            async def beating() -> bool:
                body = (await client.get("/api/services/pusher")).json()
                return bool(body["last_heartbeat"] and body["heartbeat_timeout"] == 0.6)

            await wait_for(beating, 5)
            # the service leaves: stop_monitoring() tells the agent, its /health stays 200
            await asyncio.to_thread(agent.stop_monitoring)
            await asyncio.sleep(5 * 0.6)
            assert await list_incidents(client, service_id="pusher") == []
            assert restarts == []
            body = (await client.get("/api/services/pusher")).json()
            assert body["status"] == "up"
            await asyncio.to_thread(agent.close)
            await client.aclose()


async def _push_heartbeat(server: AgentServer, service_id: str) -> None:
    body = json.dumps({"type": "heartbeat", "interval": 0.2, "sent_at": time.time()}).encode()
    headers = {"X-API-Key": TEST_KEY, "Content-Type": "application/json"}
    headers |= sign(SECRET, service_id, body)
    async with httpx.AsyncClient(base_url=server.url) as raw:
        response = await raw.post(
            f"/api/services/{service_id}/events", content=body, headers=headers
        )
    assert response.status_code == 202, response.text


async def test_a_missed_heartbeat_is_confirmed_by_a_probe_before_acting(
    sqlite_url: str, make_settings: Any
) -> None:
    # polls are far apart: only the heartbeat deadline (and its confirming probe) can act
    settings = make_settings(sqlite_url, CHECK_INTERVAL=60.0, RETRY_DELAY=10.0)
    async with AgentServer(settings) as server:
        client = api_client(server.url)
        dead_port = free_port()
        with wsgi_server(_always_ok) as healthy_url:
            for service_id, health in (
                ("quiet", f"{healthy_url}/health"),  # heartbeats lost, service fine
                ("gone", f"http://127.0.0.1:{dead_port}/health"),  # heartbeats and service gone
            ):
                registered = await client.post(
                    "/api/services/register",
                    json={
                        "service_id": service_id,
                        "name": service_id,
                        "health_url": health,
                        "secret": SECRET,
                        "heartbeat_timeout": 0.6,
                    },
                )
                assert registered.status_code in (200, 201), registered.text
            for _ in range(3):
                await _push_heartbeat(server, "quiet")
                await _push_heartbeat(server, "gone")
                await asyncio.sleep(0.2)
            stopped = time.monotonic()

            async def opened() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="gone")
                return found[0] if found else None

            incident = await wait_for(opened, 5, interval=0.05)
            assert time.monotonic() - stopped <= 0.6 + settings.CHECK_TIMEOUT + 1.0
            assert incident["type"] == "unreachable"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            assert "missed heartbeat deadline" in detail["timeline"][0]["message"]
            await asyncio.sleep(1.0)
            assert await list_incidents(client, service_id="quiet") == []
        await client.aclose()


def _always_ok(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"status": "ok"}']


async def test_the_readme_snippet_works_as_written(
    sqlite_url: str, make_settings: Any, monkeypatch: Any, capsys: Any
) -> None:
    """The seed's five lines, taken from the README, with only the addresses changed."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Services join through the SDK", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "SelfHealingAgent(agent_url=" in snippet
    monkeypatch.setenv("SELFHEAL_API_KEY", TEST_KEY)
    async with AgentServer(make_settings(sqlite_url)) as server:
        placeholder = SelfHealingAgent(server.url, "x", "payment-api", "s3cret")
        with wsgi_server(SelfHealingWSGI(agent=placeholder)) as url:
            code = snippet.replace("http://localhost:5000", server.url).replace(
                "http://127.0.0.1:6000", url
            )
            namespace: dict[str, Any] = {}
            await asyncio.to_thread(exec, code, namespace)
            agent = namespace["agent"]
            client = api_client(server.url)

            async def registered() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get("/api/services/payment-api")).json()
                return body if body.get("last_heartbeat") else None

            service = await wait_for(registered, 5)
            assert service["name"] == "Payment API"
            assert service["tags"] == ["critical"]
            assert service["metadata"] == {"version": "1.0", "user_id": "team-a"}
            await wait_for(lambda: _true("HealthStatus(" in capsys.readouterr().out), 5)
            await asyncio.to_thread(agent.close)
            await client.aclose()


EXITING = """
import sys, time
from self_healing_sdk import SelfHealingAgent
agent = SelfHealingAgent(sys.argv[1], "team-a", "exiting", "s3cret", api_key=sys.argv[2],
                         heartbeat_interval=30, timeout=2)
agent.register("Exiting", "http://127.0.0.1:9/health")
agent.start_monitoring()
time.sleep(0.3)
agent.report_error(RuntimeError("last words"))
# no stop_monitoring(), no close(): the interpreter exits with the agent running
"""


async def _run_exiting(agent_url: str) -> tuple[int, float, str]:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXITING,
        agent_url,
        TEST_KEY,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, time.monotonic() - started, output.decode()


async def test_interpreter_exit_is_clean_and_quick(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        code, took, output = await _run_exiting(server.url)
        assert code == 0, output
        assert "Traceback" not in output
        assert took < 5
        # the error reported just before exit reached the agent
        state = server.agent.monitor.state(ServiceKey("default", "exiting"))
        assert state is not None
        assert state.pushed_errors == 1
    # with no agent at all, the exit is as quick and as quiet
    code, took, output = await _run_exiting(f"http://127.0.0.1:{free_port()}")
    assert code == 0, output
    assert "Traceback" not in output
    assert took < 5


async def test_async_agent_against_the_agent_in_process(
    sqlite_url: str, make_settings: Any
) -> None:
    """No network at all: the async SDK talks to ``create_app`` through httpx's ASGI transport."""
    settings = make_settings(sqlite_url)
    core = Agent(settings)
    await core.start()
    try:
        app = create_app(settings, agent=core)
        sdk = AsyncSelfHealingAgent(
            "http://agent.internal",
            "team-a",
            "inproc",
            SECRET,
            api_key=TEST_KEY,
            heartbeat_interval=0.1,
            transport=httpx.ASGITransport(app=app),
        )
        result = await sdk.register("In process", "http://127.0.0.1:9/health")
        assert (result.ok, result.created) == (True, True)
        async with sdk:
            for _ in range(100):
                if core.heartbeats.last(ServiceKey("default", "inproc")) and sdk.view:
                    break
                await asyncio.sleep(0.02)
        assert sdk.view is not None
        assert sdk.agent_reachable
    finally:
        await core.stop()
