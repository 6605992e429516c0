"""Dependencies as ``Annotated`` aliases: the agent, and the caller's principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

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
