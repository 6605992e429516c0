"""ASGI (Starlette, FastAPI, any ASGI framework): ``/health`` and ``/webhook``, no dependency.

As middleware around the host's app, it also counts the app's requests (5xx
and exceptions as failures, with their latency) and reports the exceptions the
app raises to the agent, re-raising them unchanged::

    app.add_middleware(SelfHealingMiddleware, agent=agent)      # Starlette / FastAPI
    app = SelfHealingMiddleware(app, agent=agent)               # any ASGI app

Alone, ``asgi_app(agent)`` is a tiny ASGI app with just the two routes (mount it,
or serve it on its own port).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from self_healing_sdk._routes import (
    HEALTH_PATH,
    MAX_WEBHOOK_BYTES,
    WEBHOOK_PATH,
    AnyAgent,
    health_answer,
    too_large,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class SelfHealingMiddleware:
    """Serves the SDK's routes; passes everything else to ``app`` (404 if there is none)."""

    def __init__(
        self,
        app: ASGIApp | None = None,
        *,
        agent: AnyAgent,
        health_path: str = HEALTH_PATH,
        webhook_path: str = WEBHOOK_PATH,
        count_requests: bool = True,
    ) -> None:
        self.app = app
        self.agent = agent
        self.health_path = health_path
        self.webhook_path = webhook_path
        self.count_requests = count_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path == self.health_path:
                await self._health(scope, send)
                return
            if path == self.webhook_path:
                await self._webhook(scope, receive, send)
                return
        if self.app is not None:
            if scope["type"] == "http" and self.count_requests:
                await self._forward(self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await _respond(send, 404, b'{"error":"not found"}')

    async def _health(self, scope: Scope, send: Send) -> None:
        if scope.get("method") not in ("GET", "HEAD"):
            await _respond(send, 405, b"")
            return
        status, body = health_answer(self.agent)
        await _respond(send, status, b"" if scope.get("method") == "HEAD" else body)

    async def _webhook(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await _respond(send, 405, b"")
            return
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            if len(body) > MAX_WEBHOOK_BYTES:
                await _respond(send, 413, too_large())
                return
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
        }
        response = await self.agent.handle_webhook_async(headers, body)
        content, extra = response.encoded()
        await _respond(send, response.status, content, extra)

    async def _forward(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status: list[int] = []

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await app(scope, receive, counting_send)
        except Exception as exc:
            self.agent.report_error(exc, context={"path": scope.get("path", "")})
            self.agent.record_request(ok=False, latency_ms=_ms(started))
            raise
        self.agent.record_request(ok=not status or status[-1] < 500, latency_ms=_ms(started))


def asgi_app(agent: AnyAgent) -> SelfHealingMiddleware:
    """An ASGI app with only ``/health`` and ``/webhook``."""
    return SelfHealingMiddleware(None, agent=agent)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


async def _respond(
    send: Send, status: int, body: bytes, headers: dict[str, str] | None = None
) -> None:
    fields = {"Content-Type": "application/json"} | (headers or {})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in fields.items()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["SelfHealingMiddleware", "asgi_app"]
