"""Plain WSGI: ``/health`` and ``/webhook`` in front of any WSGI app (or alone).

::

    from self_healing_sdk.wsgi import SelfHealingWSGI
    application = SelfHealingWSGI(my_wsgi_app, agent=agent)

Requests to other paths go to the wrapped app and are counted (5xx and
exceptions as failures, with their latency); an exception the app raises is
also reported to the agent, then re-raised unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from self_healing_sdk._routes import (
    HEALTH_PATH,
    MAX_WEBHOOK_BYTES,
    WEBHOOK_PATH,
    AnyAgent,
    health_answer,
    too_large,
)

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class SelfHealingWSGI:
    """A WSGI app serving the SDK's routes; everything else goes to ``app`` (404 if none)."""

    def __init__(
        self,
        app: WSGIApplication | None = None,
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

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == self.health_path:
            if method not in ("GET", "HEAD"):
                return _answer(start_response, 405, b"")
            status, body = health_answer(self.agent)
            return _answer(start_response, status, b"" if method == "HEAD" else body)
        if path == self.webhook_path:
            if method != "POST":
                return _answer(start_response, 405, b"")
            return self._webhook(environ, start_response)
        if self.app is None:
            return _answer(start_response, 404, b'{"error":"not found"}')
        return self._forward(self.app, environ, start_response)

    def _webhook(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_WEBHOOK_BYTES:
            return _answer(start_response, 413, too_large())
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        response = self.agent.handle_webhook(_headers(environ), body)
        content, headers = response.encoded()
        return _answer(start_response, response.status, content, headers)

    def _forward(
        self, app: WSGIApplication, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if not self.count_requests:
            return app(environ, start_response)
        started = time.perf_counter()
        seen: list[int] = []

        def counting_start(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            seen.append(int(status.split(" ", 1)[0]))
            return start_response(status, headers, exc_info)

        try:
            result = app(environ, counting_start)
        except Exception as exc:
            self.agent.report_error(exc, context={"path": environ.get("PATH_INFO", "")})
            self.agent.record_request(ok=False, latency_ms=_ms(started))
            raise
        self.agent.record_request(ok=not seen or seen[-1] < 500, latency_ms=_ms(started))
        return result


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _headers(environ: WSGIEnvironment) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = str(environ["CONTENT_TYPE"])
    return headers


def _answer(
    start_response: StartResponse, status: int, body: bytes, headers: dict[str, str] | None = None
) -> list[bytes]:
    reason = _REASONS.get(status, "")
    fields = {"Content-Type": "application/json"} | (headers or {})
    start_response(
        f"{status} {reason}".strip(),
        [*fields.items(), ("Content-Length", str(len(body)))],
    )
    return [body]


__all__ = ["SelfHealingWSGI"]
