"""Dependencies as ``Annotated`` aliases: the agent, and the caller's principal."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Path, Query, Request, WebSocket
from pydantic import WithJsonSchema

from selfheal.api.schemas import SERVICE_ID
from selfheal.auth import Principal
from selfheal.errors import AuthenticationError, BadRequestError
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
_CURSOR = r"[0-9]{1,19}"


def page_cursor(
    cursor: Annotated[
        str | None,
        Query(description="the next_cursor of the previous page"),
        # stated for clients; checked below, so that the answer says how to fix it
        WithJsonSchema({"type": "string", "pattern": f"^{_CURSOR}$", "maxLength": 19}),
    ] = None,
) -> int | None:
    """The keyset cursor of a list route (the ``next_cursor`` of the previous page)."""
    if cursor is None:
        return None
    # ASCII digits only: "\u00b2".isdigit() is true and int() refuses it
    if not re.fullmatch(_CURSOR, cursor) or int(cursor) > MAX_ID:
        raise BadRequestError(
            "cursor must be the next_cursor of a previous page (ASCII digits, at most "
            f"{MAX_ID}); leave it out for the first page"
        )
    return int(cursor)


AgentDep = Annotated[Agent, Depends(get_agent)]
CursorDep = Annotated[int | None, Depends(page_cursor)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# a row id in a path: 1 to 2**63 - 1, stated in the OpenAPI document
RowId = Annotated[int, Path(ge=1, le=MAX_ID, description="a row id (1 to 2**63 - 1)")]
# a service id in a path or a filter, as registered (see SERVICE_ID)
ServiceIdPath = Annotated[str, Path(pattern=SERVICE_ID, max_length=128)]
ServiceIdFilter = Annotated[str | None, Query(pattern=SERVICE_ID, max_length=128)]
