"""``/graphql``: the Strawberry router, its WebSocket key check, and GraphiQL from the package."""

from __future__ import annotations

import html
from datetime import timedelta
from pathlib import Path
from typing import Any

from cross_web import HTTPException
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from selfheal.api.deps import refusal
from selfheal.api.errors import http_error
from selfheal.runtime.agent import Agent

from .context import GraphContext, connection_key, context_getter
from .schema import build_schema

PATH = "/graphql"
STATIC = "/graphql/static"
GRAPHIQL_FILES = Path(__file__).resolve().parents[2] / "web" / "graphiql"
CONNECTION_INIT_WAIT = timedelta(seconds=10)
MAX_SUBSCRIPTIONS = 20  # operations in flight on one WebSocket
# the page runs only the agent's files; GraphiQL's editor sets inline styles
PAGE_HEADERS = {
    "Content-Security-Policy": "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _Router(GraphQLRouter[GraphContext, None]):
    async def run(
        self,
        request: Request | WebSocket,
        context: GraphContext = UNSET,
        root_value: None = UNSET,
    ) -> Any:
        try:
            return await super().run(request, context=context, root_value=root_value)
        except HTTPException as exc:
            # strawberry answers a request it cannot read in plain text; REST's shape instead
            raise http_error(exc.status_code, exc.reason) from None

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        # strawberry's own page loads React and GraphiQL from a CDN
        agent: Agent = request.app.state.agent
        page = (GRAPHIQL_FILES / "index.html").read_text(encoding="utf-8")
        header = html.escape(agent.settings.API_KEY_HEADER, quote=True)
        return HTMLResponse(page.replace("__API_KEY_HEADER__", header), headers=PAGE_HEADERS)

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
