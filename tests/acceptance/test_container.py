"""The container image, built and run for real: ``scripts/image`` builds ``selfheal:dev``;
the container (host network, loopback port) answers /health and /metrics, runs as its
unprivileged user, reports healthy through its HEALTHCHECK, and heals a loopback
service through a signed webhook.

Needs a Docker engine (.ci/run installs docker.io and starts dockerd); without one
this test fails, it never skips: CI must not pass without building the image.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from selfheal.testing import FakeService, free_port
from tests.helpers import list_incidents, wait_for

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "selfheal:dev"
KEY = "container-test-key-0123456789"

pytestmark = [pytest.mark.container, pytest.mark.slow]


def _docker(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )


@pytest.fixture(scope="module")
def image() -> str:
    """selfheal:dev built from this checkout (docker's layer cache keeps a rebuild short)."""
    if shutil.which("docker") is None or _docker("info").returncode != 0:
        pytest.fail(
            "the container test needs a running Docker engine: apt-get install docker.io, "
            "then dockerd --bridge=none --iptables=false (.ci/run does both)"
        )
    build = subprocess.run(
        [str(ROOT / "scripts" / "image")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return IMAGE


@pytest.fixture
def container(image: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The agent in a container on a loopback port: (name, base URL).

    Its key and secret key come from files (``VAR_FILE``), as Compose and
    Kubernetes secrets do; its config file is mounted where the image looks.
    """
    name = f"selfheal-test-{uuid.uuid4().hex[:8]}"
    port = free_port()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "api_keys").write_text(KEY + "\n")
    (secrets / "secret_key").write_text("container-test-secret-key-0123\n")
    (tmp_path / "selfheal.yaml").write_text("services: []\n")
    for path in (tmp_path, secrets):  # the container's user is not root
        path.chmod(0o755)
    run = _docker(
        "run", "--detach", "--name", name, "--network", "host",
        "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges:true",
        "--env", "HOST=127.0.0.1", "--env", f"PORT={port}",
        "--volume", f"{secrets}:/run/secrets:ro",
        "--volume", f"{tmp_path / 'selfheal.yaml'}:/etc/selfheal/selfheal.yaml:ro",
        "--env", "API_KEYS_FILE=/run/secrets/api_keys",
        "--env", "SECRET_KEY_FILE=/run/secrets/secret_key",
        "--env", "CHECK_INTERVAL=1", "--env", "CHECK_TIMEOUT=0.8", "--env", "RETRY_DELAY=0.5",
        "--env", "ACTION_COOLDOWN=0", "--env", "VERIFY_INTERVAL=0.3",
        image,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    try:
        yield name, f"http://127.0.0.1:{port}"
    finally:
        logs = _docker("logs", "--tail", "40", name)
        print(logs.stdout[-4000:], logs.stderr[-4000:])  # shown when the test fails
        _docker("rm", "--force", "--volumes", name)


async def test_image_serves_and_heals_through_the_container(container: tuple[str, str]) -> None:
    name, url = container
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=5) as client:

        async def alive() -> bool:
            try:
                return (await client.get("/health")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_for(alive, 60, interval=0.5)
        assert (await client.get("/health/ready")).status_code == 200
        uid = _docker("exec", name, "id", "-u")
        assert uid.stdout.strip() == "10001", uid.stderr
        # the key from the file works (a 401 otherwise); the mounted config was loaded
        assert (await client.get("/api/services")).status_code == 200
        # what the entry point handed to `selfheal serve` (process 1 after its exec)
        environ = _docker("exec", name, "cat", "/proc/1/environ").stdout.split("\0")
        assert "SELFHEAL_CONFIG=/etc/selfheal/selfheal.yaml" in environ
        assert f"API_KEYS={KEY}" in environ
        assert not [v for v in environ if v.startswith(("API_KEYS_FILE=", "SECRET_KEY_FILE="))]

        async with FakeService(service_id="shop") as service:
            registered = await client.post(
                "/api/services/register",
                json={
                    "service_id": "shop",
                    "health_url": service.health_url,
                    "webhook_url": service.webhook_url,
                    "secret": service.secret,
                },
            )
            assert registered.status_code == 201, registered.text
            service.break_as("http_500")

            async def healed() -> bool:
                incidents = await list_incidents(client, service_id="shop")
                return bool(service.accepted_calls) and any(
                    i["status"] == "resolved" for i in incidents
                )

            await wait_for(healed, 60, interval=0.5)
            assert service.mode == "ok"

        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "agent_checks_total" in metrics.text
        assert "agent_actions_total{" in metrics.text

    async def healthy() -> bool:
        state = _docker("inspect", "--format", "{{.State.Health.Status}}", name)
        return state.stdout.strip() == "healthy"

    await wait_for(healthy, 90, interval=1)  # the image's HEALTHCHECK probes /health
    await asyncio.sleep(0)
