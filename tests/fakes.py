"""Local fakes of the services people are notified through, speaking their real protocols.

Each HTTP fake checks a payload against that service's documented format and
answers as the real one does (Slack ``ok``, PagerDuty 202 with the dedup key,
400 with errors for a malformed event); the SMTP fake is a real SMTP server
(aiosmtpd) on loopback.
"""

from __future__ import annotations

import asyncio
import email
import json
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from self_healing_sdk.signing import verify
from selfheal.testing import free_port

PD_SEVERITIES = {"critical", "error", "warning", "info"}


@dataclass
class Received:
    """One request a fake accepted."""

    channel: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class NotificationSinks:
    """Slack, Teams, PagerDuty and generic-webhook fakes on one loopback port."""

    webhook_secret: str = "sink-secret-0001"
    received: list[Received] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    def url(self, channel: str) -> str:
        """Where a channel of this kind posts."""
        return f"http://127.0.0.1:{self.port}/{channel}"

    def of(self, channel: str) -> list[dict[str, Any]]:
        """Bodies one fake accepted, in order."""
        return [r.body for r in self.received if r.channel == channel]

    async def start(self) -> NotificationSinks:
        app = web.Application()
        app.router.add_post("/slack", self._slack)
        app.router.add_post("/teams", self._teams)
        app.router.add_post("/pagerduty", self._pagerduty)
        app.router.add_post("/webhook", self._webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _reject(self, channel: str, why: str, status: int = 400) -> web.Response:
        self.rejected.append((channel, why))
        return web.Response(status=status, text=why)

    async def _json(self, request: web.Request) -> Any:
        if request.content_type != "application/json":
            raise ValueError("Content-Type must be application/json")
        return await request.json()

    async def _slack(self, request: web.Request) -> web.Response:
        # incoming webhooks answer "ok", or 400 "invalid_payload" / "no_text"
        try:
            body = await self._json(request)
        except ValueError:
            return self._reject("slack", "invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return self._reject("slack", "no_text")
        for block in body.get("blocks", []):
            if block.get("type") not in {"header", "section", "context", "divider", "actions"}:
                return self._reject("slack", f"invalid_blocks: type {block.get('type')}")
            if block["type"] == "header" and block["text"]["type"] != "plain_text":
                return self._reject("slack", "invalid_blocks: header needs plain_text")
            if block["type"] == "header" and len(block["text"]["text"]) > 150:
                return self._reject("slack", "invalid_blocks: header longer than 150")
        self.received.append(Received("slack", body, dict(request.headers)))
        return web.Response(text="ok")

    async def _teams(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request)
        except ValueError:
            return self._reject("teams", "Bad payload")
        attachments = body.get("attachments") if isinstance(body, dict) else None
        if body.get("type") != "message" or not attachments:
            return self._reject("teams", "message with attachments expected")
        for attachment in attachments:
            content = attachment.get("content") or {}
            if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
                return self._reject("teams", "adaptive card expected")
            if content.get("type") != "AdaptiveCard" or not content.get("version"):
                return self._reject("teams", "AdaptiveCard with a version expected")
            if not isinstance(content.get("body"), list) or not content["body"]:
                return self._reject("teams", "card body must be a non-empty list")
        self.received.append(Received("teams", body, dict(request.headers)))
        return web.Response(status=202)

    async def _pagerduty(self, request: web.Request) -> web.Response:
        # Events API v2: https://developer.pagerduty.com/docs/events-api-v2/trigger-events/
        try:
            body = await self._json(request)
        except ValueError:
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid"}, status=400
            )
        errors = []
        if not body.get("routing_key"):
            errors.append("'routing_key' is missing or blank")
        action = body.get("event_action")
        if action not in {"trigger", "acknowledge", "resolve"}:
            errors.append("'event_action' is invalid")
        dedup = body.get("dedup_key")
        if action in {"acknowledge", "resolve"} and not dedup:
            errors.append("'dedup_key' is required to acknowledge or resolve")
        if dedup is not None and len(dedup) > 255:
            errors.append("'dedup_key' longer than 255")
        if action == "trigger":
            payload = body.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") not in PD_SEVERITIES:
                errors.append("'payload.severity' is invalid")
            if len(payload.get("summary", "")) > 1024:
                errors.append("'payload.summary' longer than 1024")
        if errors:
            self.rejected.append(("pagerduty", "; ".join(errors)))
            return web.json_response(
                {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
                status=400,
            )
        self.received.append(Received("pagerduty", body, dict(request.headers)))
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup}, status=202
        )

    async def _webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify(self.webhook_secret, request.headers, raw, service_id="selfheal")
        except Exception as exc:
            return self._reject("webhook", str(exc), status=401)
        self.received.append(Received("webhook", json.loads(raw), dict(request.headers)))
        return web.json_response({"ok": True})


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


class SmtpSink:
    """A real SMTP server on loopback that keeps every message."""

    def __init__(self) -> None:
        self.port = free_port()
        self._box = _Mailbox()
        self._controller = Controller(self._box, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        """Messages received so far."""
        return self._box.messages

    async def start(self) -> SmtpSink:
        await asyncio.to_thread(self._controller.start)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self._controller.stop)
