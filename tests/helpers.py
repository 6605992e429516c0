"""Small helpers shared by the integration and acceptance tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx


async def wait_for(check: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def list_incidents(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    """``GET /api/incidents`` data, asserting success."""
    response = await client.get("/api/incidents", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


class AgentProcess:
    """``selfheal serve`` as a real child process, for tests that kill it."""

    def __init__(self, *, config: str, env: dict[str, str], port: int, log_path: Any) -> None:
        import os
        import sys

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._argv = [
            sys.executable,
            "-m",
            "selfheal.cli.main",
            "serve",
            "--config",
            config,
            "--port",
            str(port),
        ]
        self._env = os.environ | env
        self._log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 20) -> None:
        log = open(self._log_path, "ab")  # noqa: SIM115 - handed to the child process
        self.proc = await asyncio.create_subprocess_exec(
            *self._argv, env=self._env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise AssertionError(f"agent exited {self.proc.returncode}: {self.log()}")
                try:
                    if (await client.get(f"{self.url}/health", timeout=0.5)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"agent did not start: {self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.kill()

    async def stop(self) -> int | None:
        """SIGTERM and wait."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log(self) -> str:
        """What the agent wrote so far."""
        from pathlib import Path

        return Path(self._log_path).read_text(errors="replace")[-4000:]
