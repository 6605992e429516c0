"""Admission control: ``limit`` requests at work, ``queue`` waiting in order, the rest
refused with 503 and Retry-After; /health, /metrics and the live feeds never wait."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from selfheal.api.admission import AdmissionMiddleware


class SlowApp:
    """Answers 200 once released; records how many requests run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.order: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.order.append(scope["path"])
        if not scope["path"].startswith(("/health", "/metrics", "/api/events/")):
            self.running += 1
            self.most = max(self.most, self.running)
            await self.release.wait()
            self.running -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: AdmissionMiddleware, path: str) -> tuple[int, dict[bytes, bytes]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "path": path, "headers": []}
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0].get("headers", []))


async def test_bounded_work_a_fifo_queue_and_exempt_routes() -> None:
    inner = SlowApp()
    app = AdmissionMiddleware(inner, limit=2, queue=2)
    admitted = [asyncio.create_task(_call(app, f"/api/incidents/{n}")) for n in range(4)]
    await asyncio.sleep(0.01)
    assert inner.running == 2
    assert app.waiting == 2
    # the queue is full: the next is refused at once, saying when to retry
    status, headers = await _call(app, "/status")
    assert status == 503
    assert headers[b"retry-after"] == b"1"
    # liveness, the scrape and the feeds pass a full house
    for path in ("/health", "/health/ready", "/metrics", "/api/events/stream"):
        assert (await asyncio.wait_for(_call(app, path), 1))[0] == 200
    inner.release.set()
    results = await asyncio.wait_for(asyncio.gather(*admitted), 5)
    assert [status for status, _ in results] == [200] * 4
    assert inner.most == 2
    api = [p for p in inner.order if p.startswith("/api/incidents")]
    assert api == [f"/api/incidents/{n}" for n in range(4)]  # first come, first served
    assert app.waiting == 0
