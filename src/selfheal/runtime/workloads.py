"""What services run on, when the agent acts on it directly: supervised processes, containers.

The agent starts the processes of services with ``process:`` in the config,
and hears of their exit at once (it is their parent). An exit it did not ask
for becomes a failed sample that is conclusive on its own (the fast lane: no
consecutive bad probes are waited for), so the incident opens, the heal loop
restarts the process through the ``process`` executor under the restart
backoff, and the verifier probes it like after any other fix. Containers
(``container:``) are acted on through the Docker Engine API; a ``die`` event
on dockerd's events stream takes the same fast lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from selfheal.actions.base import Executor
from selfheal.actions.supervisor import ProcessExecutor, ProcessInfo, Supervisor
from selfheal.checks.sample import Failure, Sample
from selfheal.config import Settings
from selfheal.contrib.docker.client import DockerClient
from selfheal.contrib.docker.executor import DockerExecutor, container_name
from selfheal.contrib.docker.watch import DockerWatch
from selfheal.detectors.monitor import Monitor
from selfheal.events import Event, EventBus
from selfheal.events import bus as ev
from selfheal.logging import get_logger
from selfheal.runtime.fleet import FleetManager
from selfheal.services import ServiceSpec
from selfheal.types import ServiceKey

log = get_logger(__name__)

EXIT_EVIDENCE = "at once, by the process's exit (the agent is its parent)"
DIE_EVIDENCE = "at once, by the container's die event from dockerd"


class Workloads:
    """The processes the agent runs for its services, and the executors that act on them."""

    def __init__(
        self,
        settings: Settings,
        monitor: Monitor,
        fleet: Callable[[], FleetManager],
        bus: EventBus,
    ) -> None:
        self._monitor = monitor
        self._fleet = fleet  # built after this, in Agent.start()
        self.supervisor = Supervisor(log_dir=settings.DATA_DIR / "processes", on_exit=self._exited)
        self._docker_host = settings.DOCKER_HOST
        self._docker: DockerClient | None = None
        self.docker_watch: DockerWatch | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()
        bus.add_listener(self._on_event)

    def executors(self) -> dict[str, Executor]:
        """Executors by name, for the action runner."""
        return {
            "process": ProcessExecutor(self.supervisor),
            "docker": DockerExecutor(self.docker, self._expect_die),
        }

    def docker(self) -> DockerClient:
        """The Docker Engine API client (made on first use: most agents never need it)."""
        if self._docker is None:
            self._docker = DockerClient(self._docker_host)
        return self._docker

    def process(self, key: ServiceKey) -> ProcessInfo | None:
        """A supervised process's pid, state and log files (for the API)."""
        return self.supervisor.info(key)

    async def start(self, specs: Iterable[ServiceSpec]) -> None:
        """Start the process of every service that has one, in the given order.

        One that cannot start is logged and left to the probes: its health URL
        does not answer, so an incident opens and the heal loop retries it.
        """
        for spec in specs:
            if spec.process is None:
                continue
            try:
                await self.supervisor.start(spec.key, spec.process)
            except Exception as exc:
                log.error("process_start_failed", service_id=spec.service_id, error=str(exc))
        if any(spec.container for spec in specs) and self.docker_watch is None:
            self.docker_watch = DockerWatch(
                self.docker(), watched=self._containers, on_die=self._died
            )
            self._watch_task = asyncio.create_task(self.docker_watch.run(), name="docker-events")

    async def stop(self) -> None:
        """Stop following Docker, then every process (the last started first)."""
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
        await asyncio.gather(*self._stopping, return_exceptions=True)
        await self.supervisor.stop_all()
        if self._docker is not None:
            await self._docker.close()

    def _on_event(self, event: Event) -> None:
        """A service removed from monitoring takes its process with it."""
        if event.type != ev.SERVICE_REMOVED:
            return
        key = ServiceKey(event.tenant_id, event.data["service_id"])
        if key in self.supervisor:
            task = asyncio.create_task(self.supervisor.stop(key), name=f"stop:{key}")
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    def _containers(self) -> set[str]:
        return {container_name(s.container) for s in self._fleet().specs() if s.container}

    def _expect_die(self, name: str, seconds: float) -> None:
        if self.docker_watch is not None:
            self.docker_watch.expect(name, seconds)

    def _exited(self, key: ServiceKey, detail: str) -> None:
        spec = self._fleet().spec(key)
        if spec is not None:
            self._failed(spec, f"process {detail}", EXIT_EVIDENCE)

    def _died(self, name: str, detail: str) -> None:
        for spec in self._fleet().specs():
            if spec.container and container_name(spec.container) == name:
                self._failed(spec, detail, DIE_EVIDENCE)

    def _failed(self, spec: ServiceSpec, detail: str, evidence: str) -> None:
        """A failure the agent saw itself: conclusive, no consecutive bad probes waited for."""
        sample = Sample(
            spec.key, time.time(), False, 0.0, failure=Failure.UNREACHABLE, error=detail
        )
        self._monitor.observe(spec, sample, pushed=True, evidence=evidence)
