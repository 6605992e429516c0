"""The SDK alone: a fresh virtualenv with only ``self-healing-sdk`` (``sdk/``) installed
imports it, has none of the agent's dependencies, and runs the stdlib example service
against a real agent, which heals it through the example's handler."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx

import self_healing_sdk
from selfheal import __version__ as agent_version
from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY, api_client
from tests.helpers import list_incidents, wait_for
from tests.sdk_examples import ExampleService

REPO = Path(__file__).resolve().parents[2]
AGENT_ONLY = (
    "selfheal",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "pydantic",
    "uvicorn",
    "aiohttp",
    "structlog",
    "prometheus_client",
    "cryptography",
    "flask",
)


def test_both_distributions_carry_one_version() -> None:
    sdk = tomllib.loads((REPO / "sdk" / "pyproject.toml").read_text())["project"]
    root = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sdk["version"] == root["version"] == self_healing_sdk.__version__ == agent_version
    assert sorted(d.split(">")[0] for d in sdk["dependencies"]) == ["httpx", "psutil"]


async def test_sdk_alone_in_a_fresh_virtualenv(
    tmp_path: Path, sqlite_url: str, make_settings: Any
) -> None:
    started = time.monotonic()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(REPO / "sdk")],
        check=True,
        timeout=300,
        capture_output=True,
    )
    installed = time.monotonic() - started
    probe = (
        "import importlib.util, self_healing_sdk, self_healing_sdk.wsgi, self_healing_sdk.asgi\n"
        f"print(self_healing_sdk.__file__)\n"
        f"print([m for m in {AGENT_ONLY!r} if importlib.util.find_spec(m)])\n"
    )
    out = subprocess.run(
        [python, "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60
    ).stdout.splitlines()
    assert str(venv) in out[0]  # the installed copy, not the checkout
    assert out[1] == "[]"

    async with AgentServer(make_settings(sqlite_url)) as server:
        example = ExampleService(
            "wsgi_service.py",
            agent_url=server.url,
            api_key=TEST_KEY,
            log_path=tmp_path / "wsgi.log",
            python=python,
            args=("--heartbeat-interval", "0.5"),
        )
        client = api_client(server.url)
        try:
            await example.start()

            async def up() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get("/api/services/hello-wsgi")).json()
                return body if body.get("status") == "up" and body.get("last_heartbeat") else None

            await wait_for(up, 10)
            status = await wait_for(lambda: _viewed(example), 10)
            assert status["agent"] == {"status": "up", "healthy": True}
            async with httpx.AsyncClient(base_url=example.url) as hello:
                await hello.post("/chaos?error_rate=1")

                async def healed() -> dict[str, Any] | None:
                    await asyncio.gather(*(hello.get("/") for _ in range(5)))
                    found = await list_incidents(client, service_id="hello-wsgi")
                    return found[0] if found and found[0]["status"] == "resolved" else None

                incident = await wait_for(healed, 30, interval=0.1)
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            result = detail["actions"][0]["result"]
            assert result["detail"] == 'service answered 200: {"rolled_back": true}'
            assert result["signed"] is True
        finally:
            await example.stop()
            await client.aclose()
    print(
        f"\nfresh venv + SDK install {installed:.1f}s, whole test {time.monotonic() - started:.1f}s"
    )


async def _viewed(example: ExampleService) -> dict[str, Any] | None:
    status = await example.status()
    return status if status["agent"] else None
