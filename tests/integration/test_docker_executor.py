"""The docker executor and events watch against a real dockerd (busybox built FROM scratch)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from selfheal.actions.base import ActionRequest
from selfheal.config import Settings
from selfheal.contrib.docker.client import DockerClient
from selfheal.contrib.docker.executor import COMPOSE_NUMBER, DockerExecutor, parse_size
from selfheal.contrib.docker.watch import DockerWatch
from selfheal.errors import ActionError, ConfigError
from selfheal.services import build_spec
from selfheal.types import ServiceKey
from tests.docker_support import IMAGE, build_image, docker, require_docker
from tests.helpers import wait_for


@pytest.fixture
def image(tmp_path: Path) -> str:
    require_docker()
    return build_image(tmp_path)


@pytest.fixture
async def client() -> AsyncIterator[DockerClient]:
    docker_client = DockerClient()
    yield docker_client
    await docker_client.close()


@pytest.fixture
def compose_service(image: str) -> Iterator[tuple[str, str]]:
    """One sleeping container labelled as replica 1 of a Compose service."""
    project = f"selfheal-test-{secrets.token_hex(3)}"
    name = f"{project}-app-1"
    docker(
        "run", "-d", "--name", name, "--network", "host",
        "--label", f"com.docker.compose.project={project}",
        "--label", "com.docker.compose.service=app",
        "--label", f"{COMPOSE_NUMBER}=1",
        image, "sleep", "300",
    )  # fmt: skip
    try:
        yield project, name
    finally:
        ids = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project}")
        if ids:
            docker("rm", "-f", *ids.split())


def _request(settings: Settings, container: str, action: str, **params: Any) -> ActionRequest:
    spec = build_spec(
        settings,
        key=ServiceKey("default", "app"),
        name="app",
        health_url="http://127.0.0.1:1/health",
        container=container,
    )
    return ActionRequest(spec, action, params, 1, 1, "k", 20.0)


def _settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, DATA_DIR=tmp_path)  # type: ignore[call-arg]


async def test_scale_out_and_up(
    compose_service: tuple[str, str], client: DockerClient, tmp_path: Path
) -> None:
    project, name = compose_service
    executor = DockerExecutor(lambda: client, lambda _name, _seconds: None)
    settings = _settings(tmp_path)
    result = await executor.execute(_request(settings, name, "scale", replicas=3))
    assert result.ok, result.detail
    assert result.data["replicas"] == 3
    running = await client.containers({"com.docker.compose.project": project})
    assert sorted(c["Names"][0] for c in running) == [
        f"/{project}-app-1",
        f"/{project}-app-2",
        f"/{project}-app-3",
    ]
    assert all(c["State"] == "running" for c in running)
    assert all(c["Image"] == IMAGE for c in running)

    one_more = await executor.execute(_request(settings, name, "scale"))
    assert one_more.ok, one_more.detail
    assert one_more.data["replicas"] == 4

    up = await executor.execute(_request(settings, name, "scale", memory="96m", cpus=0.5))
    assert up.ok, up.detail
    limits = (await client.inspect(name))["HostConfig"]
    assert limits["Memory"] == 96 * 1024 * 1024
    assert limits["NanoCpus"] == 500_000_000


async def test_bad_scale_params_are_clear_errors(tmp_path: Path) -> None:
    executor = DockerExecutor(DockerClient, lambda _name, _seconds: None)
    settings = _settings(tmp_path)
    with pytest.raises(ActionError, match="replicas must be between"):
        await executor.execute(_request(settings, "x", "scale", replicas=0))
    with pytest.raises(ActionError, match="cpus must be a positive number"):
        await executor.execute(_request(settings, "x", "scale", cpus="lots"))
    with pytest.raises(ConfigError, match="only a local Unix socket"):
        DockerClient("tcp://127.0.0.1:2375")
    assert parse_size("512m") == 512 * 1024**2
    assert parse_size("1g") == 1024**3
    assert parse_size(4096) == 4096


async def test_own_restart_is_not_news_but_a_kill_is(
    compose_service: tuple[str, str], client: DockerClient, tmp_path: Path
) -> None:
    _project, name = compose_service
    died: list[str] = []
    watch = DockerWatch(client, watched=lambda: {name}, on_die=lambda _n, what: died.append(what))
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.connected.wait(), 10)
        executor = DockerExecutor(lambda: client, watch.expect)
        result = await executor.execute(_request(_settings(tmp_path), name, "restart"))
        assert result.ok, result.detail
        await asyncio.sleep(0.5)
        assert died == []
        watch.expect(name, 0)  # past the window the agent's own restart is given
        docker("kill", name)

        async def reported() -> bool:
            return bool(died)

        await wait_for(reported, 10, interval=0.02)
        assert died == [f"container {name} died (exit code 137)"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
