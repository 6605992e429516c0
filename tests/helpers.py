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

    def __init__(
        self,
        *,
        config: str,
        env: dict[str, str],
        port: int,
        log_path: Any,
        python: str | None = None,
    ) -> None:
        import os
        import sys

        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._argv = [
            python or sys.executable,
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


class TcpProxy:
    """A loopback TCP proxy that can be cut (refuse) or black-holed (drop), then healed.

    ``cut`` resets connections, as a stopped server does. ``blackhole`` is the
    nastier outage of a dropped route: connections are still accepted and
    nothing ever comes back, so only the client's own timeouts end a wait.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._dropping = False
        # connections that lost bytes while black-holed stay silent: their stream is broken
        self._poisoned: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def cut(self) -> None:
        """Refuse new connections and reset the open ones."""
        self._dropping = False
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        self._poisoned.clear()

    def blackhole(self) -> None:
        """Accept connections but drop every byte both ways, on open connections too."""
        self._dropping = True
        self._poisoned |= self._writers

    def heal(self) -> None:
        """Forward again on new connections (black-holed ones stay dead, as after a
        real outage long enough for the peer to give up on them)."""
        self._dropping = False

    async def restore(self) -> None:
        """Accept connections again on the same port."""
        await self.start()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dropping:
            await self._swallow(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        pair = {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self._dropping:
                        self._poisoned |= pair
                    if pair & self._poisoned:
                        continue  # dropped on the floor
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= pair
        self._poisoned -= pair

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read and drop until the client gives up."""
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
