"""A local process killed with SIGKILL is restarted by an ``exec`` remediation."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from selfheal.configfile import parse_config
from selfheal.demo import processes
from selfheal.testing import AgentServer, free_port
from tests.conftest import api_client
from tests.helpers import list_incidents, wait_for


async def test_killed_process_is_restarted_by_command(
    tmp_path: Path, sqlite_url: str, make_settings: Any
) -> None:
    state = tmp_path / "procs"
    state.mkdir()
    port = free_port()
    processes.spec_path(state, "worker").write_text(
        json.dumps({"port": port, "secret": "s3cret-s3cret"})
    )
    processes.start(state, "worker")
    assert processes.wait_listening(port, 10)
    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "worker",
                        "health_url": f"http://127.0.0.1:{port}/health",
                        "remediation": {
                            "restart": {
                                "exec": [
                                    sys.executable,
                                    "-m",
                                    "selfheal.demo.processes",
                                    "restart",
                                    str(state),
                                    "worker",
                                ]
                            }
                        },
                    }
                ]
            }
        )
    )
    settings = make_settings(sqlite_url)
    try:
        async with AgentServer(settings, config) as server:
            client = api_client(server.url)

            async def up() -> bool:
                return bool((await client.get("/api/services/worker")).json()["status"] == "up")

            await wait_for(up, 5)
            old_pid = int(processes.pid_path(state, "worker").read_text())
            os.kill(old_pid, signal.SIGKILL)
            killed_at = time.monotonic()

            async def answering_again() -> bool:
                try:
                    async with httpx.AsyncClient() as probe:
                        response = await probe.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
                    return response.status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for(answering_again, 15, interval=0.05)
            back_after = time.monotonic() - killed_at
            budget = settings.CHECK_INTERVAL * settings.MAX_RETRIES + 3
            assert back_after <= budget, f"back after {back_after:.1f}s, budget {budget}s"
            new_pid = int(processes.pid_path(state, "worker").read_text())
            assert new_pid != old_pid

            async def resolved() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="worker")
                return found[0] if found and found[0]["status"] == "resolved" else None

            incident = await wait_for(resolved, 10)
            assert incident["type"] == "unreachable"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            action = detail["actions"][0]
            assert action["executor"] == "exec"
            assert action["result"]["exit_code"] == 0
            assert "restarted" in action["result"]["output"]
            assert action["outcome"] == "recovered"
            await client.aclose()
    finally:
        processes.stop_all(state)
