"""Subscriptions: the live events of the caller's tenant, from the same event bus the
SSE and WebSocket feeds read; a subscription ends (UNAUTHORIZED) within about a
second of its key being revoked, expiring or its tenant disabled."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

import strawberry

from selfheal.application.feed import next_event
from selfheal.auth import Principal
from selfheal.errors import ValidationFailedError
from selfheal.runtime.agent import Agent

from .context import GraphInfo
from .errors import as_graphql_error
from .types import Event

MAX_TYPES = 50


async def _stream(
    agent: Agent, principal: Principal, wanted: set[str] | None
) -> AsyncGenerator[Event, None]:
    def with_key() -> bool:
        return agent.keys.still_valid(principal)

    async with agent.bus.subscribe(principal.tenant_id) as subscription:
        while True:
            try:
                event = await next_event(subscription, with_key)
            except Exception as exc:
                raise as_graphql_error(exc) from None
            if event is not None and (wanted is None or event.type in wanted):
                yield Event.of(event)


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live events (incident.opened, service.status, action.finished, ...); "
        "`types` keeps only those."
    )
    async def events(self, info: GraphInfo, types: list[str] | None = None) -> AsyncIterator[Event]:
        """One event at a time, as it happens. Checked before the stream starts (a plain
        coroutine, not a generator), so a refusal is an error, not an empty stream."""
        principal = info.context.caller()
        if types is not None and len(types) > MAX_TYPES:
            raise ValidationFailedError(f"types: at most {MAX_TYPES}")
        # subscribed when the stream is first read, before the ack of the subscription
        return _stream(info.context.agent, principal, set(types) if types else None)
