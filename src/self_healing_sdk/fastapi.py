"""FastAPI: a router with ``/health`` and ``/webhook``.

::

    from self_healing_sdk.fastapi import router
    app.include_router(router(agent))

To also count the app's requests and report its unhandled exceptions, add
``self_healing_sdk.asgi.SelfHealingMiddleware`` instead of (or as well as) the router.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from self_healing_sdk._routes import HEALTH_PATH, WEBHOOK_PATH, AnyAgent, health_answer


def router(
    agent: AnyAgent,
    *,
    health_path: str = HEALTH_PATH,
    webhook_path: str = WEBHOOK_PATH,
    include_in_schema: bool = False,
) -> APIRouter:
    """An ``APIRouter`` serving the SDK's two routes for ``agent``."""
    routes = APIRouter(tags=["selfheal"], include_in_schema=include_in_schema)

    @routes.get(health_path, summary="Health of this service (contract JSON)")
    async def selfheal_health() -> Response:
        status, body = health_answer(agent)
        return Response(body, status_code=status, media_type="application/json")

    @routes.post(webhook_path, summary="Actions from the selfheal agent (signed)")
    async def selfheal_webhook(request: Request) -> Response:
        body = await request.body()
        answer = await agent.handle_webhook_async(dict(request.headers), body)
        content, headers = answer.encoded()
        return Response(content, status_code=answer.status, headers=headers)

    return routes


__all__ = ["router"]
