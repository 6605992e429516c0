"""What services run on, when the agent acts on it directly: supervised processes.

The agent starts the processes of services with ``process:`` in the config,
and hears of their exit at once (it is their parent). An exit it did not ask
for becomes a failed sample that is conclusive on its own (the fast lane: no
consecutive bad probes are waited for), so the incident opens, the heal loop
restarts the process through the ``process`` executor under the restart
backoff, and the verifier probes it like after any other fix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from selfheal.actions.base import Executor
from selfheal.actions.supervisor import ProcessExecutor, ProcessInfo, Supervisor
from selfheal.checks.sample import Failure, Sample
from selfheal.config import Settings
from selfheal.detectors.monitor import Monitor
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.types import ServiceKey

log = get_logger(__name__)

EXIT_EVIDENCE = "at once, by the process's exit (the agent is its parent)"


class Workloads:
    """The processes the agent runs for its services, and the executors that act on them."""

    def __init__(
        self,
        settings: Settings,
        monitor: Monitor,
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
    ) -> None:
        self._monitor = monitor
        self._spec_of = spec_of
        self.supervisor = Supervisor(log_dir=settings.DATA_DIR / "processes", on_exit=self._exited)

    def executors(self) -> dict[str, Executor]:
        """Executors by name, for the action runner."""
        return {"process": ProcessExecutor(self.supervisor)}

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

    async def stop(self) -> None:
        """Stop every process (the last started first)."""
        await self.supervisor.stop_all()

    def _exited(self, key: ServiceKey, detail: str) -> None:
        spec = self._spec_of(key)
        if spec is None:
            return
        sample = Sample(
            key, time.time(), False, 0.0, failure=Failure.UNREACHABLE, error=f"process {detail}"
        )
        self._monitor.observe(spec, sample, pushed=True, evidence=EXIT_EVIDENCE)
