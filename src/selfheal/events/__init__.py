"""The in-process event bus: the API feed, dashboard, metrics and notifiers subscribe."""

from __future__ import annotations

from selfheal.events.bus import Event, EventBus, Subscription

__all__ = ["Event", "EventBus", "Subscription"]
