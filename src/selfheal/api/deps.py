"""Dependencies as ``Annotated`` aliases: the agent, and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, WebSocket
from pydantic import WithJsonSchema
from starlette.requests import HTTPConnection

from selfheal.api.schemas import SERVICE_ID
from selfheal.application.access import require_scope
from selfheal.application.paging import CURSOR_PATTERN, MAX_ID, parse_cursor
from selfheal.auth import FailureThrottle, Principal
from selfheal.errors import (
    ApiError,
    AuthenticationError,
    TooManyRequestsError,
)
from selfheal.runtime.agent import Agent


def get_agent(request: Request) -> Agent:
    """The running agent of this app."""
    agent: Agent = request.app.state.agent
    return agent


def presented_key(request: HTTPConnection, header: str) -> str | None:
    """The key in the API key header, or in ``Authorization: Bearer KEY`` (what
    Prometheus' ``authorization`` block sends)."""
    key = request.headers.get(header)
    if key is None:
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            key = credentials.strip()
    return key


# key administration needs the admin scope; every other route needs read to look
# and write to change (decided here, so a new route is covered without a mark)
ADMIN_PREFIX = "/api/keys"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needed_scope(method: str, path: str) -> str:
    """The scope a request needs: admin for key administration, else read or write."""
    if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
        return "admin"
    return "read" if method.upper() in _SAFE_METHODS else "write"


def get_principal(request: Request) -> Principal:
    """The caller, from its key; 401 without a valid one, 429 after too many failures,
    403 when its scope does not allow the request."""
    agent = get_agent(request)
    key = presented_key(request, agent.settings.API_KEY_HEADER)
    principal = agent.keys.authenticate(key)
    if principal is None:
        raise refusal(request, key)
    require_scope(principal, needed_scope(request.method, request.url.path))
    request.state.principal = principal  # for the audit of changes (AuditMiddleware)
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


def page_cursor(
    cursor: Annotated[
        str | None,
        Query(description="the next_cursor of the previous page"),
        # stated for clients; checked below, so that the answer says how to fix it
        WithJsonSchema({"type": "string", "pattern": f"^{CURSOR_PATTERN}$", "maxLength": 19}),
    ] = None,
) -> int | None:
    """The keyset cursor of a list route (the ``next_cursor`` of the previous page)."""
    return parse_cursor(cursor)


AgentDep = Annotated[Agent, Depends(get_agent)]
CursorDep = Annotated[int | None, Depends(page_cursor)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# a row id in a path: 1 to 2**63 - 1, stated in the OpenAPI document
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2**63 - 1)")]
# a service id in a path or a filter, as registered (see SERVICE_ID)
ServiceIdPath = Annotated[str, Path(pattern=SERVICE_ID, max_length=128)]
ServiceIdFilter = Annotated[str | None, Query(pattern=SERVICE_ID, max_length=128)]
