"""The example plugin package, installed into a fresh virtualenv next to selfheal, adds an
executor and a check; a real ``selfheal serve`` from that venv uses both from its config
file, and an incident the check finds is fixed through the executor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from selfheal.testing import free_port
from tests.conftest import TEST_KEY, api_client
from tests.helpers import AgentProcess, list_incidents, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "selfheal-example-plugin"

pytestmark = pytest.mark.slow


def make_venv(where: Path) -> Path:
    """A fresh venv holding selfheal (from the checkout) and the example plugin.

    Nothing is downloaded: the dependencies come from the test's own environment
    through a ``.pth`` file, and both packages build without build isolation.
    """
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *offline, str(REPO), str(EXAMPLE)],
        check=True,
        timeout=300,
        capture_output=True,
        cwd=where,
    )
    return python


class LegacyService:
    """A service with no SDK: a TCP greeting that says whether it works, and an admin
    endpoint that repairs it."""

    def __init__(self) -> None:
        self.healthy = False
        self.repairs: list[dict[str, Any]] = []
        self.banner_port = free_port()
        self.admin_port = free_port()

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 ready\r\n" if self.healthy else b"421 broken\r\n")
        await writer.drain()
        writer.close()

    async def _repair(self, request: web.Request) -> web.Response:
        self.repairs.append(await request.json())
        self.healthy = True
        return web.Response(text="repaired")

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._greet, "127.0.0.1", self.banner_port)
        app = web.Application()
        app.router.add_post("/admin/restart", self._repair)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.admin_port).start()
        try:
            yield
        finally:
            server.close()
            await runner.cleanup()


async def test_example_plugin_heals_through_its_executor(tmp_path: Path) -> None:
    python = make_venv(tmp_path / "venv")
    listed = subprocess.run(
        [str(python), "-c", "import selfheal, selfheal_example_plugin; print(selfheal.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert str(tmp_path / "venv") in listed  # the installed copy, not the checkout

    service = LegacyService()
    config = tmp_path / "selfheal.yaml"
    config.write_text(
        json.dumps(
            {
                "services": [
                    {
                        "id": "legacy",
                        "timeout": "0.4s",
                        "retries": 2,
                        "check": {
                            "type": "example_banner",
                            "address": f"127.0.0.1:{service.banner_port}",
                            "expect": "220 ",
                        },
                        "remediation": {
                            "restart": {
                                "executor": "example_http",
                                "options": {
                                    "url": f"http://127.0.0.1:{service.admin_port}/admin/restart"
                                },
                            }
                        },
                    }
                ]
            }
        )
    )
    env = {
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'selfheal.db'}",
        "SECRET_KEY": "test-secret-key-not-for-production",
        "API_KEYS": TEST_KEY,
        "DATA_DIR": str(tmp_path / "data"),
        "ACTION_COOLDOWN": "0",
        # faster than the per-service minimum of 1 s, which the API and config enforce
        "CHECK_INTERVAL": "0.5",
        "VERIFY_INTERVAL": "0.3",
        "VERIFY_TIMEOUT": "8",
        "PYTHONPATH": "",
    }
    agent = AgentProcess(
        config=str(config),
        env=env,
        port=free_port(),
        log_path=tmp_path / "agent.log",
        python=str(python),
    )
    async with service.run():
        await agent.start(timeout=60)
        client = api_client(agent.url)
        try:

            async def resolved() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="legacy")
                return found[0] if found and found[0]["status"] == "resolved" else None

            incident = await wait_for(resolved, 40, interval=0.2)
            assert incident["type"] == "unreachable"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            action = detail["actions"][0]
            assert action["executor"] == "example_http"
            assert action["status"] == "succeeded"
            assert action["outcome"] == "recovered"
            assert service.repairs[0]["action"] == "restart"
            assert service.healthy
        finally:
            await client.aclose()
            await agent.stop()
