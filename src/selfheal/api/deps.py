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


# key administration needs the admin scope, and so does changing the tenant's own
# settings (guard rails, channels, quotas, fix catalog); every other route needs read
# to look and write to change (decided here, so a new route is covered without a mark)
ADMIN_PREFIX = "/api/keys"
ADMIN_WRITE_PREFIXES = ("/api/tenant", "/api/catalog")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def needed_scope(method: str, path: str) -> str:
    """The scope a request needs: admin for key administration and tenant settings
    changes, else read or write."""
    safe = method.upper() in _SAFE_METHODS
    admin_write = any(_under(path, prefix) for prefix in ADMIN_WRITE_PREFIXES)
    if _under(path, ADMIN_PREFIX) or (not safe and admin_write):
        return "admin"
    return "read" if safe else "write"


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
    charge_rate_quota(agent, principal)
    return principal


def charge_rate_quota(agent: Agent, principal: Principal) -> None:
    """Count one request against the tenant's ``requests_per_second`` (429 past it);
    REST and GraphQL share the one budget. Each of N live replicas allows its share,
    rate / N: a load balancer spreading requests gives the tenant its whole budget,
    and no request waits for a shared counter."""
    rate = agent.tenants.quotas(principal.tenant_id).requests_per_second
    share = rate / agent.cluster.size if rate is not None else None
    wait = agent.rates.take(principal.tenant_id, share)
    if wait is not None:
        tenant = principal.tenant_id
        raise TooManyRequestsError(
            f"tenant {tenant!r} is over its quota of {rate:g} requests per second; retry after "
            f"the seconds in Retry-After, or raise the quota (PUT /api/tenant/quotas with an "
            f"admin key, up to the limit of requests_per_second under tenants.{tenant} in "
            "the agent's config file, which the operator sets)",
            retry_after=wait,
        )


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
