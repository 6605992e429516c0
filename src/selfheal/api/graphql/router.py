"""``/graphql``: the Strawberry router, its WebSocket key check, and GraphiQL from the package."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UnsetType

from selfheal.api.deps import refusal
from selfheal.runtime.agent import Agent

from .context import GraphContext, connection_key, context_getter
from .schema import build_schema

PATH = "/graphql"
STATIC = "/graphql/static"
GRAPHIQL_FILES = Path(__file__).resolve().parents[2] / "web" / "static" / "graphiql"
CONNECTION_INIT_WAIT = timedelta(seconds=10)
MAX_SUBSCRIPTIONS = 20  # operations in flight on one WebSocket


class _Router(GraphQLRouter[GraphContext, None]):
    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # strawberry's own page loads React and GraphiQL from a CDN
        return HTMLResponse((GRAPHIQL_FILES / "index.html").read_text(encoding="utf-8"))

    async def on_ws_connect(self, context: GraphContext) -> UnsetType | dict[str, object] | None:
        if context.principal is not None:  # a key in the upgrade request's header
            return UnsetType()
        agent: Agent = context.agent
        key = connection_key(context.connection_params, agent.settings.API_KEY_HEADER)
        context.principal = agent.keys.authenticate(key)
        if context.principal is None:
            websocket = context.request
            assert isinstance(websocket, WebSocket)
            error = refusal(websocket, key)  # counted and throttled like any refusal
            raise ConnectionRejectionError(
                {"code": error.code.upper(), "status": error.status_code, "message": error.message}
            )
        return UnsetType()


def install(app: FastAPI) -> None:
    """Add ``/graphql`` (POST queries and mutations, GET GraphiQL, WebSocket
    subscriptions) and GraphiQL's files to the app."""
    router = _Router(
        build_schema(),
        path=PATH,
        graphql_ide="graphiql",
        allow_queries_via_get=False,  # GET only serves GraphiQL: a query is a POST with a key
        context_getter=context_getter,
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        connection_init_wait_timeout=CONNECTION_INIT_WAIT,
        max_subscriptions_per_connection=MAX_SUBSCRIPTIONS,
        include_in_schema=False,  # GraphQL documents itself (introspection, docs/graphql.md)
    )
    app.include_router(router)
    app.mount(STATIC, StaticFiles(directory=GRAPHIQL_FILES), name="graphiql-static")
