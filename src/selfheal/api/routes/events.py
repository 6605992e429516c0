"""The live feed of a tenant's events: Server-Sent Events and WebSocket.

One JSON object per event. SSE sends a comment every 15 s so proxies keep the
connection open. A WebSocket client that cannot set headers (a browser) sends
``{"api_key": "..."}`` as its first message instead. A feed ends within about a
second of its key being refused (revoked, expired, tenant disabled).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from selfheal.api.deps import AgentDep, PrincipalDep, refusal, websocket_agent
from selfheal.application.feed import KeyRefusedError, next_event
from selfheal.auth import Principal
from selfheal.events import Subscription

router = APIRouter(prefix="/api/events", tags=["events"])

REVOKED = {"code": "unauthorized", "message": "the API key was revoked or has expired"}
AUTH_TIMEOUT_SECONDS = 5.0


@router.get(
    "/stream",
    summary="Live events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream(request: Request, agent: AgentDep, principal: PrincipalDep) -> StreamingResponse:
    """Status changes, incidents, decisions and actions of the caller's tenant, as they happen."""
    subscription = agent.bus.subscribe(principal.tenant_id)
    return StreamingResponse(
        _sse(request, subscription, lambda: agent.keys.still_valid(principal)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _sse(
    request: Request, subscription: Subscription, valid: Callable[[], bool]
) -> AsyncIterator[str]:
    try:
        yield ": connected\n\n"
        while not await request.is_disconnected():
            try:
                event = await next_event(subscription, valid)
            except KeyRefusedError:
                yield f"event: error\ndata: {json.dumps({'error': REVOKED})}\n\n"
                return
            if event is None:
                yield ": keep-alive\n\n"
                continue
            payload = json.dumps(event.as_dict(), separators=(",", ":"), default=str)
            yield f"id: {event.id}\nevent: {event.type}\ndata: {payload}\n\n"
    finally:
        subscription.close()


@router.websocket("/ws")
async def websocket_feed(websocket: WebSocket) -> None:
    """The same events as the SSE stream, over a WebSocket."""
    agent = websocket_agent(websocket)
    principal = agent.keys.authenticate(websocket.headers.get(agent.settings.API_KEY_HEADER))
    await websocket.accept()
    if principal is None:
        principal = await _first_message_auth(websocket, agent)
        if principal is None:
            return
    # subscribed before saying so: whatever the client loads after "connected" is covered
    async with agent.bus.subscribe(principal.tenant_id) as subscription:
        await websocket.send_json({"type": "connected", "tenant_id": principal.tenant_id})
        receiver = asyncio.create_task(_drain_client(websocket))
        try:
            while not receiver.done():
                try:
                    event = await next_event(
                        subscription, lambda: agent.keys.still_valid(principal)
                    )
                except KeyRefusedError:
                    await websocket.send_json({"error": REVOKED})
                    await websocket.close(code=4401)
                    return
                if event is None:
                    continue
                await websocket.send_text(
                    json.dumps(event.as_dict(), separators=(",", ":"), default=str)
                )
        except WebSocketDisconnect:
            pass
        finally:
            receiver.cancel()


async def _first_message_auth(websocket: WebSocket, agent: AgentDep) -> Principal | None:
    try:
        message = await asyncio.wait_for(websocket.receive_json(), AUTH_TIMEOUT_SECONDS)
    except (TimeoutError, ValueError, WebSocketDisconnect):
        message = None
    key = message.get("api_key") if isinstance(message, dict) else None
    presented = key if isinstance(key, str) else None
    principal = agent.keys.authenticate(presented)
    if principal is None:
        error = refusal(websocket, presented)
        await websocket.send_json({"error": {"code": error.code, "message": error.message}})
        await websocket.close(code=4000 + error.status_code)  # 4401, or 4429 when throttled
    return principal


async def _drain_client(websocket: WebSocket) -> None:
    """Read (and ignore) client messages so a disconnect is noticed."""
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        return
