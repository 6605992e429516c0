"""A container killed with ``docker kill``: the incident opens from the die event, before
any probe fails; the agent starts the container again through the Docker Engine API.

Real dockerd, a busybox image built FROM scratch, ``--network host`` and loopback only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from selfheal.configfile import parse_config
from selfheal.contrib.docker.client import DockerClient
from selfheal.testing import AgentServer, free_port
from tests.conftest import api_client
from tests.docker_support import build_image, docker, require_docker, run_httpd
from tests.helpers import list_incidents, wait_for


@pytest.fixture
def container(tmp_path: Path) -> Iterator[tuple[str, int]]:
    require_docker()
    build_image(tmp_path)
    port = free_port()
    name = run_httpd(port)
    try:
        yield name, port
    finally:
        docker("rm", "-f", name)


async def _answers(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as probe:
            response = await probe.get(f"http://127.0.0.1:{port}/health", timeout=0.5)
        return response.status_code == 200
    except httpx.HTTPError:
        return False


async def test_killed_container_is_started_again(
    container: tuple[str, int], sqlite_url: str, make_settings: Any
) -> None:
    name, port = container
    config = parse_config(
        json.dumps(
            {
                "services": [
                    {
                        "id": "web",
                        "health_url": f"http://127.0.0.1:{port}/health",
                        "container": name,
                    }
                ]
            }
        )
    )
    # probes every 60 s (the first at a random point of the first interval): the
    # incident can only come from the die event
    settings = make_settings(sqlite_url, CHECK_INTERVAL=60.0, CHECK_TIMEOUT=1.0)
    async with AgentServer(settings, config) as server:
        client = api_client(server.url)
        await wait_for(lambda: _answers(port), 10, interval=0.05)
        watch = server.agent.workloads.docker_watch
        assert watch is not None
        await wait_for(lambda: _flag(watch.connected.is_set()), 10)
        checks_failed = server.agent.monitor.checks_failed

        docker("kill", name)
        killed_at = time.monotonic()

        async def opened() -> dict[str, Any] | None:
            found = await list_incidents(client, service_id="web")
            return found[0] if found else None

        incident = await wait_for(opened, 10, interval=0.02)
        opened_after = time.monotonic() - killed_at
        assert server.agent.monitor.checks_failed == checks_failed, "a probe failed first"
        assert opened_after < 5, f"opened {opened_after:.2f}s after the kill"

        await wait_for(lambda: _answers(port), 20, interval=0.05)

        async def resolved() -> dict[str, Any] | None:
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            return detail if detail["status"] == "resolved" else None

        detail = await wait_for(resolved, 20)
        texts = [event["message"] for event in detail["timeline"]]
        assert any("die event" in t and name in t for t in texts), texts
        action = detail["actions"][0]
        assert action["executor"] == "docker"
        assert action["action"] == "restart"
        assert action["outcome"] == "recovered"
        service = (await client.get("/api/services/web")).json()
        assert service["container"] == name
        assert docker("inspect", "-f", "{{.State.Running}}", name) == "true"
        await client.aclose()


async def test_stop_start_and_raise_limits(container: tuple[str, int]) -> None:
    name, port = container
    client = DockerClient()
    try:
        await client.update(name, memory=64 * 1024 * 1024, nano_cpus=500_000_000)
        limits = (await client.inspect(name))["HostConfig"]
        assert limits["Memory"] == 64 * 1024 * 1024
        assert limits["NanoCpus"] == 500_000_000
        await client.stop(name, stop_timeout=1)
        assert not (await client.inspect(name))["State"]["Running"]
        await client.start(name)
        await wait_for(lambda: _answers(port), 10, interval=0.05)
    finally:
        await client.close()


async def _flag(value: bool) -> bool:
    return value
