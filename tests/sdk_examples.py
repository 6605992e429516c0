"""The example services as real child processes, for the acceptance tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from selfheal.testing import free_port

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


class ExampleService:
    """``python examples/<script> --port P --agent-url U ...`` with its output in a file."""

    def __init__(
        self,
        script: str,
        *,
        agent_url: str,
        api_key: str,
        log_path: Path,
        service_id: str | None = None,
        python: str = sys.executable,
        args: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._argv = [python, str(EXAMPLES / script), "--port", str(self.port)]
        self._argv += ["--agent-url", agent_url, *args]
        if service_id:
            self._argv += ["--service-id", service_id]
        self._env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self._env |= {"SELFHEAL_API_KEY": api_key, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        """The process id."""
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 20) -> None:
        """Start it and wait until it answers its own /status."""
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self._argv,
            env=self._env,
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
            cwd=self.log_path.parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise AssertionError(f"{self._argv[1]} exited: {self.log()}")
                try:
                    if (await client.get(f"{self.url}/status", timeout=0.5)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self._argv[1]} did not start: {self.log()}")

    async def status(self) -> dict[str, Any]:
        """What the example's health callback last received."""
        async with httpx.AsyncClient() as client:
            body: dict[str, Any] = (await client.get(f"{self.url}/status", timeout=2)).json()
            return body

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead (no heartbeats, no answers)."""
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT."""
        os.kill(self.pid, signal.SIGCONT)

    async def stop(self) -> int | None:
        """SIGCONT (in case it is frozen), SIGTERM, and wait."""
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.thaw()
        self.proc.terminate()
        try:
            return await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    def log(self) -> str:
        """What it printed so far."""
        return self.log_path.read_text(errors="replace")[-4000:]
