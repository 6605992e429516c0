"""``create_app(settings)``: the agent and its HTTP surface in one ASGI app.

The agent starts and stops in the lifespan, never at import time. Middleware
order is visible in ``_middleware`` (outermost first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware import Middleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from selfheal import __version__
from selfheal.api.admission import AdmissionMiddleware
from selfheal.api.audit import AuditMiddleware
from selfheal.api.errors import install_error_handlers
from selfheal.api.graphql import install as install_graphql
from selfheal.api.middleware import BodyLimitMiddleware
from selfheal.api.routes import api_router
from selfheal.auth import FailureThrottle
from selfheal.config import Settings
from selfheal.configfile import FileConfig
from selfheal.runtime.agent import Agent
from selfheal.web import install as install_dashboard
from selfheal.web.apidocs import install as install_api_docs

PUBLIC_PATHS = frozenset({"/health", "/health/ready"})


def _operation_id(route: APIRoute) -> str:
    # stable ids ("services-register_service") make generated clients read well
    tag = route.tags[0] if route.tags else "default"
    return f"{tag}-{route.name}"


def _middleware(settings: Settings) -> list[Middleware]:
    return [
        # outermost: a request waiting for its turn has cost nothing yet
        Middleware(AdmissionMiddleware, limit=settings.API_CONCURRENCY, queue=settings.API_QUEUE),
        Middleware(BodyLimitMiddleware, limit=settings.MAX_BODY_BYTES),
        Middleware(AuditMiddleware),
    ]


def create_app(
    settings: Settings, *, file_config: FileConfig | None = None, agent: Agent | None = None
) -> FastAPI:
    """The ASGI app; it owns an ``Agent`` unless one is handed in (already started)."""
    owned = agent is None
    the_agent = agent or Agent(settings, file_config=file_config)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned:
            await the_agent.start()
        try:
            yield
        finally:
            if owned:
                await the_agent.stop()

    app = FastAPI(
        title="selfheal",
        version=__version__,
        summary="Keeps web services healthy on its own: detect, decide, fix, verify, learn.",
        lifespan=lifespan,
        middleware=_middleware(settings),
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served from the package below, not from a CDN
        redoc_url=None,
    )
    app.state.agent = the_agent
    app.state.auth_throttle = FailureThrottle(per_minute=settings.AUTH_FAILURES_PER_MINUTE)
    install_error_handlers(app)
    app.include_router(api_router)
    install_dashboard(app)
    install_api_docs(app)
    install_graphql(app)
    app.openapi = lambda: _openapi(app, settings.API_KEY_HEADER)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI, header: str) -> dict[str, Any]:
    """The generated document plus the API key scheme on every protected route."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    schema.setdefault("components", {})["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": header}
    }
    error = {
        "description": "Error",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}},
    }
    schema["components"].setdefault("schemas", {})["ErrorPublic"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path not in PUBLIC_PATHS:
                operation["security"] = [{"ApiKey": []}]
                operation.setdefault("responses", {}).setdefault("401", error)
                operation["responses"].setdefault("403", error)  # the key's scope
                operation["responses"].setdefault("429", error)
            responses = operation.setdefault("responses", {})
            if "requestBody" in operation:
                # malformed JSON, and bodies over MAX_BODY_BYTES (BodyLimitMiddleware)
                responses.setdefault("400", error)
                responses.setdefault("413", error)
            if "422" in responses:
                responses["422"] = error
    app.openapi_schema = schema
    return schema
