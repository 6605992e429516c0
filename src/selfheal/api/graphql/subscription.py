"""Subscriptions: the live events of the caller's tenant, from the same event bus the
SSE and WebSocket feeds read; a subscription ends (UNAUTHORIZED) within about a
second of its key being revoked, expiring or its tenant disabled."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from selfheal.application.feed import next_event
from selfheal.errors import ValidationFailedError

from .context import GraphInfo
from .errors import as_graphql_error
from .types import Event

MAX_TYPES = 50


@strawberry.type
class Subscription:
    @strawberry.subscription(
        description="Live events (incident.opened, service.status, action.finished, ...); "
        "`types` keeps only those."
    )
    async def events(
        self, info: GraphInfo, types: list[str] | None = None
    ) -> AsyncGenerator[Event, None]:
        """One event at a time, as it happens."""
        try:
            principal = info.context.caller()
            if types is not None and len(types) > MAX_TYPES:
                raise ValidationFailedError(f"types: at most {MAX_TYPES}")
        except Exception as exc:
            raise as_graphql_error(exc) from None
        agent = info.context.agent
        wanted = set(types) if types else None
        # subscribed before the first event is awaited: nothing published after
        # the client's subscribe message is missed
        with_key = lambda: agent.keys.still_valid(principal)  # noqa: E731
        async with agent.bus.subscribe(principal.tenant_id) as subscription:
            while True:
                try:
                    event = await next_event(subscription, with_key)
                except Exception as exc:
                    raise as_graphql_error(exc) from None
                if event is not None and (wanted is None or event.type in wanted):
                    yield Event.of(event)
