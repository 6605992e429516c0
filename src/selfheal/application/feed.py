"""The live feed of a tenant's events, for the SSE and WebSocket feeds and GraphQL
subscriptions alike: one subscription to the event bus, ended as soon as the key
that opened it no longer holds (revoked, expired, tenant disabled)."""

from __future__ import annotations

from collections.abc import Callable

from selfheal.errors import AuthenticationError
from selfheal.events import Event, Subscription

KEEPALIVE_SECONDS = 15.0
KEY_RECHECK_SECONDS = 1.0  # how often an open feed checks that its key still holds


class KeyRefusedError(AuthenticationError):
    """The API key was revoked or has expired."""


async def next_event(
    subscription: Subscription,
    valid: Callable[[], bool],
    *,
    wait: float = KEEPALIVE_SECONDS,
) -> Event | None:
    """The next event within ``wait`` seconds, or None; raises ``KeyRefusedError`` as
    soon as the key no longer holds (checked every KEY_RECHECK_SECONDS)."""
    waited = 0.0
    while waited < wait:
        event = await subscription.get(timeout=KEY_RECHECK_SECONDS)
        if not valid():
            raise KeyRefusedError
        if event is not None:
            return event
        waited += KEY_RECHECK_SECONDS
    return None
