"""Acting on a container through the Docker Engine API: restart, start, stop, scale.

``scale`` with ``memory`` (bytes, or ``"512m"``, ``"1g"``) and/or ``cpus``
(e.g. ``1.5``) raises the container's limits in place (scale up); with
``replicas: N`` it makes the container's Compose service run N containers
(scale out: copies of this container, labelled like it); with neither, one
more than now. Only executes: the
verifier decides whether the service is healthy again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from selfheal.actions.base import ActionRequest, ActionResult
from selfheal.contrib.docker.client import DockerClient
from selfheal.errors import ActionError

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_NUMBER = "com.docker.compose.container-number"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MAX_REPLICAS = 50
AFTER_OWN_ACTION = 2.0  # seconds a die event is still put down to the agent's own action
# the die event of a container the agent restarts or stops itself is expected
Expect = Callable[[str, float], None]


def container_name(spec_container: str) -> str:
    """The name as the Docker API reports it in events (no leading slash)."""
    return spec_container.lstrip("/")


def parse_size(value: Any) -> int:
    """Bytes from ``536870912``, ``"512m"``, ``"1g"``, ``"256MB"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and (match := _SIZE.match(value)):
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    raise ActionError(f"memory must be a number of bytes or e.g. '512m', '1g'; got {value!r}")


class DockerExecutor:
    """The ``docker`` executor: a service with ``container:`` in the config."""

    name = "docker"

    def __init__(self, client: Callable[[], DockerClient], expect: Expect) -> None:
        self._client = client
        self._expect = expect

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Carry out restart, start, stop or scale on the service's container."""
        if request.spec.container is None:
            raise ActionError(f"service {request.spec.service_id!r} has no container")
        name = container_name(request.spec.container)
        docker = self._client()
        stop_timeout = max(1, int(request.timeout / 2))
        if request.action not in ("restart", "stop"):
            return await self._act(docker, name, request, stop_timeout)
        self._expect(name, request.timeout + 5.0)
        try:
            return await self._act(docker, name, request, stop_timeout)
        finally:
            self._expect(name, AFTER_OWN_ACTION)  # its die event may still be on the way

    async def _act(
        self, docker: DockerClient, name: str, request: ActionRequest, stop_timeout: int
    ) -> ActionResult:
        if request.action == "restart":
            await docker.restart(name, stop_timeout=stop_timeout)
            return ActionResult(True, f"container {name} restarted")
        if request.action == "start":
            await docker.start(name)
            return ActionResult(True, f"container {name} started")
        if request.action == "stop":
            await docker.stop(name, stop_timeout=stop_timeout)
            return ActionResult(True, f"container {name} stopped")
        if request.action == "scale":
            return await self._scale(docker, name, request.params)
        raise ActionError(f"the docker executor cannot {request.action!r}")

    async def _scale(self, docker: DockerClient, name: str, params: dict[str, Any]) -> ActionResult:
        if "replicas" in params:
            return await self._scale_out(docker, name, params["replicas"])
        memory = parse_size(params["memory"]) if params.get("memory") is not None else None
        cpus = params.get("cpus")
        if memory is None and cpus is None:
            return await self._scale_out(docker, name, None)  # one more replica
        nano = None
        if cpus is not None:
            if not isinstance(cpus, int | float) or isinstance(cpus, bool) or cpus <= 0:
                raise ActionError(f"cpus must be a positive number, got {cpus!r}")
            nano = int(float(cpus) * 1e9)
        await docker.update(name, memory=memory, nano_cpus=nano)
        limits = {"memory": memory, "cpus": cpus}
        done = ", ".join(f"{k} {v}" for k, v in limits.items() if v is not None)
        return ActionResult(True, f"container {name} limits raised: {done}", {"limits": limits})

    async def _scale_out(
        self, docker: DockerClient, name: str, replicas: Any | None
    ) -> ActionResult:
        """``replicas`` containers of the Compose service; None: one more than run now."""
        if replicas is not None:
            _check_replicas(replicas)
        template = await docker.inspect(name)
        labels: dict[str, str] = template["Config"].get("Labels") or {}
        if COMPOSE_PROJECT not in labels or COMPOSE_SERVICE not in labels:
            raise ActionError(
                f"container {name} is not part of a Compose service (no compose labels); "
                "give scale params memory and/or cpus to raise its limits instead"
            )
        group = {k: labels[k] for k in (COMPOSE_PROJECT, COMPOSE_SERVICE)}
        current = await docker.containers(group)
        running = [c for c in current if c.get("State") == "running"]
        if replicas is None:
            replicas = len(running) + 1
            _check_replicas(replicas)
        numbers = [int((c.get("Labels") or {}).get(COMPOSE_NUMBER, "0") or 0) for c in current]
        started: list[str] = []
        for stopped in [c for c in current if c.get("State") != "running"]:
            if len(running) + len(started) >= replicas:
                break
            await docker.start(stopped["Id"])
            started.append(stopped["Names"][0].lstrip("/"))
        next_number = max(numbers, default=0) + 1
        while len(running) + len(started) < replicas:
            new = f"{group[COMPOSE_PROJECT]}-{group[COMPOSE_SERVICE]}-{next_number}"
            body = _clone(template, labels | {COMPOSE_NUMBER: str(next_number)})
            await docker.start(await docker.create(new, body))
            started.append(new)
            next_number += 1
        total = len(running) + len(started)
        return ActionResult(
            True,
            f"{group[COMPOSE_SERVICE]}: {total} running (was {len(running)})",
            {"replicas": total, "started": started, "at": time.time()},
        )


def _check_replicas(replicas: Any) -> None:
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise ActionError(f"replicas must be a whole number, got {replicas!r}")
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ActionError(f"replicas must be between 1 and {MAX_REPLICAS}, got {replicas}")


def _clone(template: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """A create body copying a container's image, command, env and host config."""
    config = template["Config"]
    return {
        "Image": config["Image"],
        "Cmd": config.get("Cmd"),
        "Entrypoint": config.get("Entrypoint"),
        "Env": config.get("Env"),
        "WorkingDir": config.get("WorkingDir") or "",
        "Labels": labels,
        "HostConfig": template.get("HostConfig") or {},
    }
