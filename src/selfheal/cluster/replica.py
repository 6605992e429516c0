"""This process as one replica of a cluster: membership, ownership and fleet changes.

On PostgreSQL every ``selfheal serve`` is a replica with no extra setting; with
one replica it owns every service, as a single agent always did. On SQLite
there is no cluster (one process; ``sqlite_lock`` refuses a second) and this
object does nothing but say so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from selfheal.checks.scheduler import Scheduler
from selfheal.cluster.fencing import Fence
from selfheal.cluster.membership import BEAT, LEASE, Membership
from selfheal.cluster.notify import FleetListener, announce
from selfheal.cluster.ownership import Ownership
from selfheal.cluster.quorum import Quorum, Verdict
from selfheal.cluster.shared import STATE, SharedState
from selfheal.decisions.controls import Controls
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.types import IncidentType, ServiceKey

if TYPE_CHECKING:  # the runtime imports this module
    from selfheal.runtime.fleet import FleetManager
    from selfheal.runtime.healer import Healer

log = get_logger(__name__)

RECONCILE_INTERVAL = 30.0  # the safety net under LISTEN/NOTIFY
ADOPT_INTERVAL = 1.0  # how often unheld incidents of this replica's services are looked for


class Cluster:
    """Starts and stops the replica's loops and wires them into the scheduler and fleet."""

    def __init__(
        self,
        db: Database,
        *,
        fleet: FleetManager,
        scheduler: Scheduler,
        lease: float = LEASE,
        beat: float = BEAT,
        reconcile_interval: float = RECONCILE_INTERVAL,
        bus: EventBus | None = None,
        controls: Controls | None = None,
    ) -> None:
        self.enabled = not db.is_sqlite
        self._db = db
        self._fleet = fleet
        self._scheduler = scheduler
        self._reconcile_interval = reconcile_interval
        self.membership = Membership(db, on_view=self._on_view, lease=lease, beat=beat)
        self.ownership = Ownership(self.membership.id)
        self.listener = FleetListener(
            db, me=self.membership.id, refresh=fleet.refresh, reconcile=self._reconcile
        )
        # guard rails, resolutions and the live feed, shared through NOTIFY
        self.shared: SharedState | None = None
        self.quorum: Quorum | None = None
        if self.enabled and bus is not None and controls is not None:
            self.shared = SharedState(
                db,
                me=self.membership.id,
                bus=bus,
                controls=controls,
                alone=lambda: len(self.membership.view) <= 1,
                owns=self.ownership.owns,
            )
            self.shared.attach(self.listener)
            self.quorum = Quorum(
                me=self.membership.id,
                members=lambda: self.membership.view,
                send=self._send_state,
                spec_of=fleet.spec,
                probe=scheduler.probe_now,
            )
            self.shared.on_quorum = self.quorum.on_message
        self.fence = Fence(
            db,
            self.membership if self.enabled else None,
            self.ownership.owns if self.enabled else None,
        )
        self.healer: Healer | None = None  # set by ``attach_healer`` once built
        self._adopt_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _send_state(self, message: dict[str, Any]) -> bool:
        assert self.shared is not None
        return self.shared.send(STATE, message)

    def needs_quorum(self, spec: ServiceSpec) -> bool:
        """True if an incident of ``spec`` waits for other replicas to agree."""
        return self.quorum is not None and spec.confirm_from > 1

    async def confirm(self, spec: ServiceSpec, kind: IncidentType) -> Verdict:
        """Ask the other replicas (``confirm_from``) before an incident of ``spec`` opens."""
        if self.quorum is None:
            return Verdict(True, 0, "no cluster")
        return await self.quorum.confirm(spec, kind)

    def attach_healer(self, healer: Healer) -> None:
        """Heal loops follow the services they heal; resolutions elsewhere reach them."""
        self.healer = healer
        if self.shared is not None:
            self.shared.healer = healer
            healer.backoff.publish = self.shared.share_backoff

    @property
    def size(self) -> int:
        """Live replicas, this one included (1 when not clustered)."""
        return max(1, len(self.membership.view)) if self.enabled else 1

    @property
    def member_id(self) -> str:
        """This replica's id in ``cluster_members``."""
        return self.membership.id

    async def start(self) -> None:
        """Join (before the fleet is loaded, so it is scheduled by ownership from the start)."""
        if not self.enabled:
            return
        await self.membership.tick()
        self.ownership.update(self.membership.view)
        self._scheduler.reassign(self.ownership.owns)
        self._fleet.on_change = self._announce
        self._tasks = [
            asyncio.create_task(self.membership.run(), name="cluster:membership"),
            asyncio.create_task(self.listener.listen(), name="cluster:listen"),
            asyncio.create_task(self.listener.apply(), name="cluster:apply"),
            asyncio.create_task(self._reconcile_loop(), name="cluster:reconcile"),
            asyncio.create_task(self._adopt_loop(), name="cluster:adopt"),
        ]
        if self.shared is not None:
            self._tasks.append(asyncio.create_task(self.shared.run(), name="cluster:share"))
        # listening before the fleet is loaded: no change made meanwhile goes unheard
        try:
            await asyncio.wait_for(self.listener.connected.wait(), self._db.timeouts.connect + 1)
        except TimeoutError:
            log.warning("cluster_listener_not_connected", member=self.member_id)
        log.info("cluster_joined", member=self.member_id, members=len(self.membership.view))

    async def stop(self) -> None:
        """Stop the loops and leave, so the others take this replica's services at once."""
        if not self.enabled:
            return
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self.membership.leave()

    def _on_view(self, members: Sequence[str]) -> None:
        if self.ownership.update(members):
            self._scheduler.reassign(self.ownership.owns)
            if self.healer is not None:
                self.healer.reassigned()
            self._adopt_now.set()
            log.info(
                "cluster_services_assigned",
                member=self.member_id,
                members=len(members),
                probing=self._scheduler.probing(),
            )

    async def _announce(self, key: ServiceKey) -> None:
        await announce(self._db, key, origin=self.member_id)

    async def _reconcile(self) -> int:
        """The fleet, and the guard rails (a NOTIFY may have been missed)."""
        if self.shared is not None:
            self.shared.reload_controls()
        return await self._fleet.reconcile()

    async def _reconcile_loop(self) -> None:
        while True:
            await asyncio.sleep(self._reconcile_interval)
            try:
                changed = await self._reconcile()
            except StorageError as exc:
                log.warning("cluster_reconcile_delayed", error=exc.message)
                continue
            if changed:
                log.debug("cluster_reconciled", services=changed)

    async def _adopt_loop(self) -> None:
        """Resume the incidents of this replica's services that no live heal loop holds:
        released by a replica that lost the service, or left by one that died."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._adopt_now.wait(), ADOPT_INTERVAL)
            self._adopt_now.clear()
            if self.healer is None or self.membership.fenced:
                continue
            try:
                orphans = await self.fence.orphans()
            except StorageError as exc:
                log.warning("cluster_adopt_delayed", error=exc.message)
                continue
            for incident_id, key in orphans:
                if not self.healer.healing(incident_id):
                    log.info("incident_adopted", incident_id=incident_id, member=self.member_id)
                    self.healer.adopt(incident_id, key)
