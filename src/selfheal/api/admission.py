"""Admission control: a bounded number of API requests at work at once, the rest queued.

The API and the probe scheduler share one event loop. What delays a probe or a
``/health`` answer is the work other coroutines do between two of its turns:
with 16 requests in flight, up to 16 slices of request work (JSON, pydantic,
row decoding) run before the loop comes back to it. Admitting ``limit``
requests at a time keeps that queue of ready work short; the others wait in
FIFO order on a semaphore, costing nothing while they wait. Past ``queue``
waiting requests, the answer is 503 with ``Retry-After`` instead of a queue
that grows without end.

Never queued: liveness and readiness (``/health``), the Prometheus scrape
(``/metrics``, rendered in a worker thread), the live feeds (long-lived; they
would hold a permit for hours) and the dashboard's static files.
"""

from __future__ import annotations

import asyncio
import json

from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT_PREFIXES = ("/health", "/metrics", "/dashboard", "/api/events/", "/docs")


class AdmissionMiddleware:
    """At most ``limit`` admitted requests run at once; at most ``queue`` wait."""

    def __init__(self, app: ASGIApp, *, limit: int, queue: int) -> None:
        self.app = app
        self.limit = limit
        self.queue = queue
        self._slots: asyncio.Semaphore | None = None  # made in the serving loop
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limit)
        if self._slots.locked() and self.waiting >= self.queue:
            await self._refuse(send)
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, receive, send)
        finally:
            self._slots.release()

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "overloaded",
                    "message": (
                        f"the agent is answering {self.limit} requests and has {self.queue} "
                        "more waiting; retry after a second"
                    ),
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
