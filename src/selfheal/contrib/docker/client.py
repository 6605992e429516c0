"""A small Docker Engine API client over the daemon's Unix socket, on aiohttp.

aiohttp is already how the agent probes; its ``UnixConnector`` speaks HTTP
over a Unix socket, so the handful of calls the agent needs (inspect, restart,
start, stop, update, list, events) cost no new dependency, and the client is
async all the way (the ``docker`` package is synchronous and would need a
thread per call and per events stream).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from selfheal.errors import ActionError, ConfigError

DEFAULT_HOST = "unix:///var/run/docker.sock"
CALL_TIMEOUT = 30.0


class DockerError(ActionError):
    """The Docker Engine API refused or failed a call."""


def socket_path(docker_host: str | None = None) -> str:
    """The Unix socket a ``DOCKER_HOST`` value names (unset: the environment's, or the default)."""
    host = docker_host or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    if not host.startswith("unix://"):
        raise ConfigError(
            f"DOCKER_HOST={host!r}: only a local Unix socket is supported "
            "(write unix:///var/run/docker.sock, or unset it)"
        )
    return host.removeprefix("unix://")


class DockerClient:
    """The calls the agent makes to dockerd. One connection pool; close it when done."""

    def __init__(self, docker_host: str | None = None) -> None:
        self.socket = socket_path(docker_host)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.socket),
                base_url="http://docker",
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float = CALL_TIMEOUT,
    ) -> Any:
        try:
            async with self._http().request(
                method,
                path,
                params=params,
                json=body,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    message = _message(text) or response.reason
                    raise DockerError(f"Docker {method} {path}: {response.status} {message}")
                return json.loads(text) if text.strip() else None
        except aiohttp.ClientError as exc:
            raise DockerError(f"Docker at {self.socket} unreachable: {exc}") from None

    async def inspect(self, name: str) -> dict[str, Any]:
        """``GET /containers/{name}/json``."""
        found: dict[str, Any] = await self._call("GET", f"/containers/{name}/json")
        return found

    async def restart(self, name: str, *, stop_timeout: int = 10) -> None:
        """Restart (a stopped container is started)."""
        await self._call(
            "POST",
            f"/containers/{name}/restart",
            params={"t": str(stop_timeout)},
            timeout=stop_timeout + CALL_TIMEOUT,
        )

    async def start(self, name: str) -> None:
        """Start; a container already running is fine (304)."""
        await self._call("POST", f"/containers/{name}/start")

    async def stop(self, name: str, *, stop_timeout: int = 10) -> None:
        """Stop (its stop signal, then SIGKILL after ``stop_timeout``)."""
        await self._call(
            "POST",
            f"/containers/{name}/stop",
            params={"t": str(stop_timeout)},
            timeout=stop_timeout + CALL_TIMEOUT,
        )

    async def update(self, name: str, *, memory: int | None, nano_cpus: int | None) -> None:
        """Change memory (bytes) and CPU (billionths of a CPU) limits of a running container."""
        body: dict[str, int] = {}
        if memory is not None:
            body |= {"Memory": memory, "MemorySwap": -1}  # -1: swap not limited separately
        if nano_cpus is not None:
            body["NanoCpus"] = nano_cpus
        await self._call("POST", f"/containers/{name}/update", body=body)

    async def containers(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Containers (running or not) carrying every one of ``labels``."""
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        found: list[dict[str, Any]] = await self._call(
            "GET", "/containers/json", params={"all": "1", "filters": json.dumps(filters)}
        )
        return found

    async def create(self, name: str, spec: dict[str, Any]) -> str:
        """Create a container from a create body; returns its id."""
        created: dict[str, Any] = await self._call(
            "POST", "/containers/create", params={"name": name}, body=spec
        )
        return str(created["Id"])

    async def events(
        self,
        filters: Mapping[str, list[str]],
        *,
        since: float | None = None,
        opened: asyncio.Event | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Follow ``GET /events``: one decoded event at a time, until the stream ends.

        ``since`` (unix seconds) replays what happened from then on first;
        ``opened`` is set once dockerd has answered: events from then on are seen.
        """
        params = {"filters": json.dumps(filters)}
        if since is not None:
            params["since"] = f"{since:.9f}"
        try:
            async with self._http().get(
                "/events",
                params=params,
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as response:
                if response.status >= 400:
                    text = await response.text()
                    raise DockerError(f"Docker events: {response.status} {_message(text)}")
                if opened is not None:
                    opened.set()
                async for line in response.content:
                    if line.strip():
                        yield json.loads(line)
        except aiohttp.ClientError as exc:
            raise DockerError(f"Docker events stream lost: {exc}") from None


def _message(text: str) -> str:
    try:
        return str(json.loads(text).get("message", "")).strip()
    except (ValueError, AttributeError):
        return text.strip()[:200]
