"""The signal worker: monitor signals become status history, events and incidents.

The monitor (and the anomaly scoring) only put signals on a queue: they run on
the probe path and must not wait for the database. One worker takes them in
order; a database outage delays a signal, it does not lose it.

A service with ``confirm_from`` above 1 on a cluster opens its incident only once
other replicas agree (``cluster/quorum.py``); that wait runs in its own task, so
it never holds up the other services' signals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from selfheal.cluster.quorum import Verdict
from selfheal.detectors.monitor import (
    Cleared,
    Confirmed,
    FlapSettled,
    FlapStarted,
    Signal,
    StatusChanged,
)
from selfheal.detectors.thresholds import Symptom
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.incidents.service import IncidentService
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.storage.tables import Incident
from selfheal.types import IncidentType, ServiceKey, ServiceStatus

log = get_logger(__name__)


class QuorumGate(Protocol):
    """The cluster, as far as confirming an incident with other replicas goes."""

    def needs_quorum(self, spec: ServiceSpec) -> bool:
        """True if incidents of ``spec`` wait for other replicas to agree."""
        ...

    async def confirm(self, spec: ServiceSpec, kind: IncidentType) -> Verdict:
        """Ask the other replicas."""
        ...


class SignalWorker:
    """Handles the queued signals one at a time (``run``), or what is left (``drain``)."""

    def __init__(
        self,
        signals: asyncio.Queue[Signal],
        *,
        incidents: IncidentService,
        start_healing: Callable[[Incident], None],
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        bus: EventBus,
        record_status: Callable[[StatusChanged], None],
        quorum: QuorumGate | None = None,
        forget_symptom: Callable[[ServiceKey, IncidentType], None] | None = None,
    ) -> None:
        self._quorum = quorum
        self._forget_symptom = forget_symptom
        self._confirming: set[asyncio.Task[None]] = set()
        self._signals = signals
        self._incidents = incidents
        self._start_healing = start_healing
        self._spec_of = spec_of
        self._bus = bus
        self._record_status = record_status

    async def run(self) -> None:
        while True:
            signal = await self._signals.get()
            await self._with_retry(self._handle, signal)

    async def drain(self) -> None:
        """At stop: status changes still queued go to the history; the rest waits."""
        while not self._signals.empty():
            signal = self._signals.get_nowait()
            if isinstance(signal, StatusChanged):
                await self._handle(signal)

    async def _with_retry(
        self, handler: Callable[[Signal], Awaitable[None]], signal: Signal
    ) -> None:
        """A database outage delays signals; it does not lose them. A bug in handling one
        signal is logged and that signal dropped: the agent keeps watching the rest."""
        delay = 0.5
        while True:
            try:
                await handler(signal)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, StorageError):
                    log.exception("signal_handling_failed", signal=type(signal).__name__)
                    return
                log.warning(
                    "signal_delayed_database_unavailable", error=exc.message, retry_in=delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _handle(self, signal: Signal) -> None:
        if isinstance(signal, StatusChanged):
            self._on_status(signal)
        elif isinstance(signal, Confirmed):
            if self._spec_of(signal.spec.key) is None:
                return  # removed while the signal waited
            if self._quorum is not None and self._quorum.needs_quorum(signal.spec):
                task = asyncio.create_task(self._confirm_then_open(signal))
                self._confirming.add(task)
                task.add_done_callback(self._confirming.discard)
                return
            await self._open(signal)
        elif isinstance(signal, Cleared):
            await self._incidents.resolve_recovered(signal.spec, signal.type)
        elif isinstance(signal, FlapStarted):
            symptom = Symptom(
                IncidentType.FLAPPING,
                f"{signal.changes} changes between healthy and unhealthy within {signal.window:g}s",
                float(signal.changes),
                float(signal.changes),
            )
            row, created = await self._incidents.open(
                signal.spec, symptom, signal.sample, detected=f"flapping: {symptom.detail}"
            )
            if created:
                self._start_healing(row)
        elif isinstance(signal, FlapSettled):
            await self._incidents.resolve_recovered(signal.spec, IncidentType.FLAPPING)

    async def _open(self, signal: Confirmed, verdict: Verdict | None = None) -> None:
        row, created = await self._incidents.open(
            signal.spec,
            signal.symptom,
            signal.sample,
            evidence=signal.evidence,
            crash_loop=signal.crash_loop,
        )
        if created and verdict is not None:
            await self._incidents.note(
                row.tenant_id,
                row.id,
                "quorum",
                verdict.reason,
                {"confirmed_by": verdict.confirmed_by, "confirm_from": signal.spec.confirm_from},
            )
        if created:
            self._start_healing(row)

    async def _confirm_then_open(self, signal: Confirmed) -> None:
        assert self._quorum is not None
        spec, kind = signal.spec, signal.symptom.type
        verdict = await self._quorum.confirm(spec, kind)
        if not verdict.open:
            log.info(
                "incident_not_confirmed",
                service_id=spec.service_id,
                type=kind.value,
                reason=verdict.reason,
            )
            if self._forget_symptom is not None:
                self._forget_symptom(spec.key, kind)  # the next failures ask again
            return
        await self._with_retry(lambda _s: self._open(signal, verdict), signal)

    def _on_status(self, signal: StatusChanged) -> None:
        spec, sample = signal.spec, signal.sample
        if signal.previous is not ServiceStatus.UNKNOWN or signal.status is not ServiceStatus.UP:
            # a service found healthy at start is not news; every other move is
            level = "warning" if signal.status is ServiceStatus.DOWN else "info"
            getattr(log, level)(
                "service_status_changed",
                service_id=spec.service_id,
                previous=signal.previous.value,
                status=signal.status.value,
                reason=signal.reason,
            )
        self._bus.publish(
            ev.SERVICE_STATUS,
            spec.tenant_id,
            {
                "service_id": spec.service_id,
                "previous": signal.previous.value,
                "status": signal.status.value,
                "reason": signal.reason,
                "sample": sample.as_dict(),
            },
        )
        self._record_status(signal)
