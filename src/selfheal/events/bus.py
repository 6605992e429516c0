"""Publish/subscribe inside one process, per tenant.

Publishing never blocks and never fails: a subscriber that falls behind loses
its oldest events (counted in ``dropped``) rather than slowing the agent down.
Events another replica published reach this one's subscribers (the live feed)
through ``publish_remote``, and never its listeners (metrics, workloads): each
replica counts and acts on its own events only.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from selfheal.logging import get_logger

log = get_logger(__name__)

# event types, one per fact the outside world may care about
SERVICE_STATUS = "service.status"
SERVICE_REGISTERED = "service.registered"
SERVICE_REMOVED = "service.removed"
SERVICE_PROBES = "service.probes"  # once a second: the latest probe of each service probed
INCIDENT_OPENED = "incident.opened"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_ESCALATED = "incident.escalated"
DECISION_MADE = "decision.made"
ACTION_STARTED = "action.started"
ACTION_FINISHED = "action.finished"
VERIFICATION_FINISHED = "verification.finished"


@dataclass(frozen=True, slots=True)
class Event:
    """One fact, owned by one tenant."""

    type: str
    tenant_id: str
    data: dict[str, Any]
    id: int = 0
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object sent on the live feed."""
        return {"id": self.id, "type": self.type, "at": self.at, "data": self.data}


class Subscription:
    """A bounded queue of one subscriber's events; use as an async iterator."""

    def __init__(self, bus: EventBus, tenant_id: str | None, maxsize: int) -> None:
        self.tenant_id = tenant_id
        self.dropped = 0
        self._bus = bus
        self._items: deque[Event] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False

    def _push(self, event: Event) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after ``timeout`` seconds or when closed."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._items.popleft()

    def close(self) -> None:
        """Stop receiving; a waiting ``get`` returns None."""
        self._closed = True
        self._bus._remove(self)
        self._ready.set()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        event = await self.get()
        if event is None:
            raise StopAsyncIteration
        return event

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscriptions (async) and listeners (sync, cheap)."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []
        self._ids = itertools.count(1)
        self._dropped_by_closed = 0

    def publish(self, type: str, tenant_id: str, data: dict[str, Any]) -> Event:
        """Deliver an event to everyone entitled to see it."""
        event = Event(type=type, tenant_id=tenant_id, data=data, id=next(self._ids))
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                # a broken listener must not stop the agent or the other listeners
                log.exception("event_listener_failed", listener=repr(listener), event_type=type)
        for sub in self._subscriptions:
            if sub.tenant_id is None or sub.tenant_id == tenant_id:
                sub._push(event)
        return event

    def publish_remote(self, type: str, tenant_id: str, data: dict[str, Any], at: float) -> Event:
        """Deliver an event another replica published, to subscriptions only."""
        event = Event(type=type, tenant_id=tenant_id, data=data, id=next(self._ids), at=at)
        for sub in self._subscriptions:
            if sub.tenant_id is None or sub.tenant_id == tenant_id:
                sub._push(event)
        return event

    def subscribe(self, tenant_id: str | None, *, maxsize: int = 1000) -> Subscription:
        """Receive one tenant's events (None: every tenant's, for internal consumers)."""
        sub = Subscription(self, tenant_id, maxsize)
        self._subscriptions.add(sub)
        return sub

    def watched_tenants(self) -> set[str | None]:
        """Tenants with at least one subscriber (None: someone subscribed to all)."""
        return {sub.tenant_id for sub in self._subscriptions}

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` synchronously for every event; it must be quick."""
        self._listeners.append(listener)

    def feed_stats(self) -> tuple[int, int]:
        """(open subscriptions, events dropped so far by slow subscribers, closed ones too)."""
        live = list(self._subscriptions)
        return len(live), self._dropped_by_closed + sum(sub.dropped for sub in live)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.discard(sub)
            self._dropped_by_closed += sub.dropped
