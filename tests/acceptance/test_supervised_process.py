"""Supervised processes: the agent starts them, restarts them with backoff, and stops them.

Real child processes (a tiny stdlib HTTP server), real HTTP on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from selfheal.configfile import FileConfig, parse_config
from selfheal.testing import AgentServer, free_port
from selfheal.types import ServiceKey
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for

TINY_HTTP = str(Path(__file__).parent.parent / "procs" / "tiny_http.py")


def _config(ports: dict[str, int], *, backoff: float = 0.0, **process: Any) -> FileConfig:
    services = [
        {
            "id": name,
            "health_url": f"http://127.0.0.1:{port}/health",
            "process": {"command": [sys.executable, TINY_HTTP, str(port)], **process},
        }
        for name, port in ports.items()
    ]
    policies = {"restart_backoff": {"initial": backoff, "max": 60, "reset_after": 600}}
    return parse_config(json.dumps({"services": services, "policies": policies}))


async def _answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as probe:
            response = await probe.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
        return response.status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_started_killed_restarted_and_resolved(sqlite_url: str, make_settings: Any) -> None:
    port = free_port()
    # slow probes: the incident must come from the exit, not from failed probes
    settings = make_settings(sqlite_url, CHECK_INTERVAL=30.0, CHECK_TIMEOUT=1.0)
    async with AgentServer(settings, _config({"worker": port})) as server:
        client = api_client(server.url)
        await wait_for(lambda: _answers(port), 10, interval=0.05)
        service = (await client.get("/api/services/worker")).json()
        process = service["process"]
        assert process["running"] is True
        old_pid = process["pid"]
        stdout_log = Path(process["stdout_log"])
        await wait_for(lambda: _true(stdout_log.exists()), 5)
        assert f"listening on {port}" in stdout_log.read_text()

        os.kill(old_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await wait_for(lambda: _answers(port), 10, interval=0.02)
        back_after = time.monotonic() - killed_at
        # a probe interval of 30 s: only the exit itself can explain a quick restart
        assert back_after < 5, f"answering again after {back_after:.2f}s"

        async def resolved() -> dict[str, Any] | None:
            found = await list_incidents(client, service_id="worker")
            return found[0] if found and found[0]["status"] == "resolved" else None

        incident = await wait_for(resolved, 20)
        assert incident["type"] == "unreachable"
        detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
        texts = [event["message"] for event in detail["timeline"]]
        assert any("by the process's exit" in t and "killed by SIGKILL" in t for t in texts), texts
        action = detail["actions"][0]
        assert action["executor"] == "process"
        assert action["outcome"] == "recovered"
        after = (await client.get("/api/services/worker")).json()["process"]
        assert after["pid"] != old_pid
        assert after["restarts"] == 1
        assert after["last_exit"] == "killed by SIGKILL"
        assert not _alive(old_pid)
        await client.aclose()
    assert not _alive(after["pid"])


async def test_restarts_wait_under_backoff(sqlite_url: str, make_settings: Any) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, CHECK_INTERVAL=30.0, CHECK_TIMEOUT=1.0)
    async with AgentServer(settings, _config({"worker": port}, backoff=2.0)) as server:
        client = api_client(server.url)
        supervisor = server.agent.workloads.supervisor
        await wait_for(lambda: _answers(port), 10, interval=0.05)
        first = supervisor.info(server.agent.fleet.specs()[0].key)
        assert first is not None
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        await wait_for(lambda: _answers(port), 10, interval=0.02)  # the first: at once

        async def resolved_count() -> int:
            found = await list_incidents(client, service_id="worker")
            return sum(1 for i in found if i["status"] == "resolved")

        await wait_for(resolved_count, 20)
        second = supervisor.info(server.agent.fleet.specs()[0].key)
        assert second is not None
        assert second.pid is not None
        os.kill(second.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await wait_for(lambda: _answers(port), 15, interval=0.02)
        waited = time.monotonic() - killed_at
        # backoff: 2 s (+-10 % jitter) after the first restart, less the time already passed
        found = await list_incidents(client, service_id="worker")
        detail = (await client.get(f"/api/incidents/{found[0]['id']}")).json()
        held = [e for e in detail["timeline"] if "restart backoff" in e["message"]]
        assert held, [e["message"] for e in detail["timeline"]]
        assert waited > 0.5, f"restarted after {waited:.2f}s despite the backoff"
        await client.aclose()


async def test_stopped_in_reverse_order_then_killed_after_timeout(
    sqlite_url: str, make_settings: Any
) -> None:
    ports = {"first": free_port(), "second": free_port()}
    settings = make_settings(sqlite_url, CHECK_INTERVAL=30.0)
    config = _config(ports, stop_timeout="1s")
    # the second ignores SIGTERM: it must be killed once stop_timeout has passed
    config.services[1].process.command.append("--ignore-term")  # type: ignore[union-attr]
    server = AgentServer(settings, config)
    async with server:
        for port in ports.values():
            await wait_for(lambda port=port: _answers(port), 10, interval=0.05)
        infos = {
            s.service_id: server.agent.workloads.process(s.key) for s in server.agent.fleet.specs()
        }
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    pids = {name: info.pid for name, info in infos.items() if info is not None and info.pid}
    assert set(pids) == {"first", "second"}
    assert not any(_alive(pid) for pid in pids.values())
    term_at = {
        name: float(Path(info.stderr_log).read_text().split()[-1])
        for name, info in infos.items()
        if info is not None
    }
    assert term_at["second"] < term_at["first"], "the last started must stop first"
    assert term_at["first"] - term_at["second"] >= 0.9, "the second was SIGKILLed too early"
    assert stopped_in < 10


async def _true(value: bool) -> bool:
    return value


async def test_removed_service_takes_its_process_along(sqlite_url: str, make_settings: Any) -> None:
    port = free_port()
    settings = make_settings(sqlite_url, CHECK_INTERVAL=30.0)
    async with AgentServer(settings, _config({"worker": port})) as server:
        client = api_client(server.url)
        await wait_for(lambda: _answers(port), 10, interval=0.05)
        pid = (await client.get("/api/services/worker")).json()["process"]["pid"]
        assert (await client.delete("/api/services/worker")).status_code == 204

        async def gone() -> bool:
            return not _alive(pid)

        await wait_for(gone, 15)
        assert server.agent.workloads.process(ServiceKey("default", "worker")) is None
        await client.aclose()
