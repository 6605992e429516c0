"""Dependencies as ``Annotated`` aliases: the agent, and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, WebSocket

from selfheal.api.schemas import SERVICE_ID
from selfheal.auth import Principal
from selfheal.errors import AuthenticationError, ValidationFailedError
from selfheal.runtime.agent import Agent


def get_agent(request: Request) -> Agent:
    """The running agent of this app."""
    agent: Agent = request.app.state.agent
    return agent


def get_principal(request: Request) -> Principal:
    """The caller, from the API key header; 401 without a valid key."""
    agent = get_agent(request)
    key = request.headers.get(agent.settings.API_KEY_HEADER)
    principal = agent.keys.authenticate(key)
    if principal is None:
        raise AuthenticationError(
            f"a valid API key is required in the {agent.settings.API_KEY_HEADER} header"
            if key is None
            else "the API key is not valid"
        )
    return principal


def websocket_agent(websocket: WebSocket) -> Agent:
    """The running agent, for WebSocket routes."""
    agent: Agent = websocket.app.state.agent
    return agent


# row ids are 64-bit signed integers in both databases; past that a query cannot run
MAX_ID = 2**63 - 1
_CURSOR = r"^[0-9]{1,19}$"


def page_cursor(
    cursor: Annotated[
        str | None,
        Query(
            max_length=19,
            pattern=_CURSOR,
            description="the next_cursor of the previous page (ASCII digits)",
        ),
    ] = None,
) -> int | None:
    """The keyset cursor of a list route (the ``next_cursor`` of the previous page)."""
    if cursor is None:
        return None
    # the pattern admits only ASCII digits ("\u00b2".isdigit() is true, int() refuses it)
    value = int(cursor)
    if value > MAX_ID:
        raise ValidationFailedError(
            f"cursor: must be at most {MAX_ID}; pass the next_cursor of a previous page"
        )
    return value


AgentDep = Annotated[Agent, Depends(get_agent)]
CursorDep = Annotated[int | None, Depends(page_cursor)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# a row id in a path: 1 to 2**63 - 1, stated in the OpenAPI document
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2**63 - 1)")]
# a service id in a path or a filter, as registered (see SERVICE_ID)
ServiceIdPath = Annotated[str, Path(pattern=SERVICE_ID, max_length=128)]
ServiceIdFilter = Annotated[str | None, Query(pattern=SERVICE_ID, max_length=128)]
