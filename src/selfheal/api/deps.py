"""Dependencies as ``Annotated`` aliases: the agent, and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket
from starlette.requests import HTTPConnection

from selfheal.auth import FailureThrottle, Principal
from selfheal.errors import (
    ApiError,
    AuthenticationError,
    BadRequestError,
    TooManyRequestsError,
)
from selfheal.runtime.agent import Agent


def get_agent(request: Request) -> Agent:
    """The running agent of this app."""
    agent: Agent = request.app.state.agent
    return agent


def presented_key(request: Request, header: str) -> str | None:
    """The key in the API key header, or in ``Authorization: Bearer KEY`` (what
    Prometheus' ``authorization`` block sends)."""
    key = request.headers.get(header)
    if key is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            key = credentials.strip()
    return key


def get_principal(request: Request) -> Principal:
    """The caller, from its key; 401 without a valid one, 429 after too many failures."""
    agent = get_agent(request)
    key = presented_key(request, agent.settings.API_KEY_HEADER)
    principal = agent.keys.authenticate(key)
    if principal is None:
        raise refusal(request, key)
    return principal


def refusal(connection: HTTPConnection, key: str | None) -> ApiError:
    """The error for a missing or wrong key (HTTP or WebSocket): counted, throttled
    per client address, logged by the throttle without the key."""
    agent: Agent = connection.app.state.agent
    throttle: FailureThrottle = connection.app.state.auth_throttle
    reason = "missing_key" if key is None else "wrong_key"
    client = connection.client.host if connection.client else "unknown"
    wait = throttle.refuse(client, reason)
    agent.metrics.auth_failures.labels(reason="throttled" if wait else reason).inc()
    if wait is not None:
        return TooManyRequestsError(
            "too many requests with a missing or wrong API key from this address; "
            "retry after the seconds in Retry-After",
            retry_after=wait,
        )
    if key is None:
        header = agent.settings.API_KEY_HEADER
        return AuthenticationError(
            f"a valid API key is required in the {header} header (or Authorization: Bearer)"
        )
    return AuthenticationError("the API key is not valid")


def websocket_agent(websocket: WebSocket) -> Agent:
    """The running agent, for WebSocket routes."""
    agent: Agent = websocket.app.state.agent
    return agent


def page_cursor(cursor: str | None = None) -> int | None:
    """The keyset cursor of a list route (the ``next_cursor`` of the previous page)."""
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise BadRequestError("cursor must be the next_cursor of a previous page")
    return int(cursor)


AgentDep = Annotated[Agent, Depends(get_agent)]
CursorDep = Annotated[int | None, Depends(page_cursor)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
