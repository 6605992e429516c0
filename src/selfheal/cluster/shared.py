"""What the replicas tell each other through NOTIFY: guard rails, resolutions, the live feed.

Two channels besides the fleet's (``notify.py``), each message a JSON object
with the sender's member id in ``"o"`` (a replica skips its own):

- ``selfheal_state``: ``{"k": "controls"}`` after a pause, resume or silence
  change (the others re-read pauses and silences from the database, where the
  change already committed); ``awaiting`` / ``approved`` / ``forget`` for
  approvals (the heal loop waiting for one may run on any replica, the person
  may approve through any); ``resolved`` for an incident resolved here, so a heal
  loop held on another replica stops; ``backoff`` and ``beat`` (restart backoff,
  heartbeat deadlines); ``probe`` / ``probed`` for the quorum (``quorum.py``).
- ``selfheal_events``: every live-feed event published here (type, tenant,
  data, time), re-published on the others to their subscribers only
  (``EventBus.publish_remote``): a dashboard on any replica sees every replica's
  events, each tenant only its own, as on one replica.

PostgreSQL refuses a payload of 8000 bytes or more: such an event is not
forwarded (counted in ``too_large``; the dashboard reads it through the API).
Messages are sent in order by one task, many per transaction. NOTIFY is not
stored: a replica whose listening connection broke re-reads the guard rails at
the reconnect and every reconcile (30 s); events it missed meanwhile are lost
to its live feed, as a dropped SSE connection loses them.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from selfheal.checks.heartbeat import HeartbeatWatch
from selfheal.decisions.controls import Controls
from selfheal.errors import StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.logging import get_logger
from selfheal.storage.db import Database
from selfheal.types import ServiceKey

if TYPE_CHECKING:
    from selfheal.cluster.notify import FleetListener
    from selfheal.runtime.healer import Healer

log = get_logger(__name__)

STATE = "selfheal_state"
EVENTS = "selfheal_events"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL's NOTIFY limit is 8000
BACKLOG = 10_000  # messages kept while the database is away; the oldest go first
BATCH = 200
# each replica publishes these itself when it applies the fleet change
LOCAL_ONLY = frozenset({ev.SERVICE_REGISTERED, ev.SERVICE_REMOVED})
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")


class SharedState:
    """Sends this replica's changes and events; applies the others'."""

    def __init__(
        self,
        db: Database,
        *,
        me: str,
        bus: EventBus,
        controls: Controls,
        alone: Callable[[], bool],
        owns: Callable[[ServiceKey], bool],
    ) -> None:
        self._db = db
        self._me = me
        self._bus = bus
        self._controls = controls
        self._alone = alone
        self._owns = owns
        self.healer: Healer | None = None
        self.heartbeats: HeartbeatWatch | None = None
        # quorum requests and answers ("probe", "probed") go to cluster/quorum.py
        self.on_quorum: Callable[[dict[str, Any]], None] | None = None
        self._outbox: deque[tuple[str, str]] = deque(maxlen=BACKLOG)
        self._wake = asyncio.Event()
        self._reload = asyncio.Event()
        self.sent = 0
        self.too_large = 0

    def attach(self, listener: FleetListener) -> None:
        """Listen on both channels, and hook the sending side into controls and the bus."""
        listener.on(STATE, self._on_state)
        listener.on(EVENTS, self._on_event)
        self._controls.publish = self._share_control
        self._bus.add_listener(self.forward)

    # -- sending ------------------------------------------------------------------------

    def send(self, channel: str, message: dict[str, Any]) -> bool:
        """Queue one message for the other replicas; False if too large or nobody listens."""
        if self._alone():
            return False
        payload = json.dumps(message | {"o": self._me}, default=str, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD:
            self.too_large += 1
            return False
        self._outbox.append((channel, payload))
        self._wake.set()
        return True

    def _share_control(self, message: dict[str, Any]) -> None:
        self.send(STATE, message)

    def share_backoff(self, key: ServiceKey, count: int, next_at: float) -> None:
        """A restart made here: the others pace the service the same way."""
        message = {"k": "backoff", "t": key.tenant_id, "s": key.service_id, "c": count}
        self.send(STATE, message | {"n": next_at})

    def share_beat(self, key: ServiceKey, timeout: float) -> None:
        """A heartbeat received here for a service another replica owns: it arms the deadline."""
        self.send(STATE, {"k": "beat", "t": key.tenant_id, "s": key.service_id, "to": timeout})

    def forward(self, event: ev.Event) -> None:
        """A bus listener: every event published here goes to the others' live feeds."""
        if event.type in LOCAL_ONLY:
            return
        message = {"t": event.tenant_id, "y": event.type, "d": event.data, "a": event.at}
        self.send(EVENTS, message)
        if event.type == ev.INCIDENT_RESOLVED and "id" in event.data:
            self.send(STATE, {"k": "resolved", "i": event.data["id"]})

    async def run(self) -> None:
        """Send queued messages in order, up to ``BATCH`` per transaction; re-read the
        guard rails when told to."""
        await asyncio.gather(self._send_loop(), self._reload_loop())

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(BATCH, len(self._outbox)))]
                try:
                    async with self._db.session() as session:
                        for channel, payload in batch:
                            await session.execute(_NOTIFY, {"channel": channel, "payload": payload})
                except StorageError as exc:
                    log.warning("cluster_share_delayed", error=exc.message, messages=len(batch))
                    self._outbox.extendleft(reversed(batch))
                    await asyncio.sleep(1.0)
                    continue
                self.sent += len(batch)

    # -- receiving ----------------------------------------------------------------------

    def reload_controls(self) -> None:
        """Re-read pauses and silences soon (coalesced)."""
        self._reload.set()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload.wait()
            self._reload.clear()
            try:
                await self._controls.reload()
            except StorageError as exc:
                log.warning("cluster_controls_reload_delayed", error=exc.message)
                self._reload.set()
                await asyncio.sleep(1.0)

    def _on_state(self, message: dict[str, Any]) -> None:
        kind = message.get("k")
        if kind == "controls":
            self.reload_controls()
        elif kind in ("awaiting", "approved", "forget"):
            self._controls.apply_remote(message)
        elif kind == "resolved" and self.healer is not None:
            self.healer.resolved(int(message["i"]))
        elif kind in ("probe", "probed") and self.on_quorum is not None:
            self.on_quorum(message)
        elif kind == "backoff" and self.healer is not None:
            key = ServiceKey(str(message["t"]), str(message["s"]))
            self.healer.backoff.apply(key, int(message["c"]), float(message["n"]))
        elif kind == "beat" and self.heartbeats is not None:
            key = ServiceKey(str(message["t"]), str(message["s"]))
            if self._owns(key):
                self.heartbeats.beat(key, float(message["to"]))

    def _on_event(self, message: dict[str, Any]) -> None:
        data = message.get("d")
        if not isinstance(data, dict):
            return
        self._bus.publish_remote(
            str(message["y"]), str(message["t"]), data, float(message.get("a", 0.0))
        )
