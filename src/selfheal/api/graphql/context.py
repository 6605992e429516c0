"""Who is asking: the agent and the caller's key, for every resolver.

HTTP requests authenticate like REST (the API key header, or ``Authorization:
Bearer``; 401 or 429 with the REST error body before any GraphQL runs). A
WebSocket authenticates in its ``connection_init`` payload (``{"api_key": ...}``
or the header's name as the field), or in the header of the upgrade request.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext
from strawberry.types import Info

from selfheal.api.deps import charge_rate_quota, presented_key, refusal
from selfheal.application.access import require_scope
from selfheal.application.feed import KeyRefusedError
from selfheal.auth import Principal
from selfheal.errors import AuthenticationError
from selfheal.runtime.agent import Agent


class GraphContext(BaseContext):
    """The agent, and the caller once its key is known."""

    def __init__(self, agent: Agent, principal: Principal | None) -> None:
        super().__init__()
        self.agent = agent
        self.principal = principal

    def caller(self, needed: str = "read") -> Principal:
        """The caller, whose key must allow ``needed`` (403 FORBIDDEN otherwise)."""
        if self.principal is None:
            raise AuthenticationError("a valid API key is required")
        # a WebSocket outlives its key: each operation on it checks the key again
        if not self.agent.keys.still_valid(self.principal):
            raise KeyRefusedError
        require_scope(self.principal, needed)
        return self.principal


GraphInfo: TypeAlias = Info[GraphContext, None]


async def context_getter(connection: HTTPConnection) -> GraphContext:
    """The context of one request; a POST without a valid key is refused here."""
    agent: Agent = connection.app.state.agent
    key = presented_key(connection, agent.settings.API_KEY_HEADER)
    principal = agent.keys.authenticate(key)
    if connection.scope.get("method") == "POST":
        if principal is None:
            raise refusal(connection, key)
        charge_rate_quota(agent, principal)
    return GraphContext(agent, principal)


def connection_key(params: Any, header: str) -> str | None:
    """The key in a ``connection_init`` payload: ``api_key``, or the header's name."""
    if not isinstance(params, dict):
        return None
    lowered = {str(k).lower(): v for k, v in params.items()}
    for name in ("api_key", header.lower()):
        value = lowered.get(name)
        if isinstance(value, str) and value:
            return value
    return None
