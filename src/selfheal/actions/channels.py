"""Escalation channels, each speaking the real format of its service.

- ``slack``: an incoming-webhook POST with ``text`` and Block Kit ``blocks``.
- ``teams``: a Workflows/incoming-webhook POST carrying an Adaptive Card.
- ``pagerduty``: Events API v2; ``trigger`` then ``resolve`` with the same ``dedup_key``.
- ``email``: a plain-text message through SMTP (STARTTLS and login optional).
- ``webhook``: our own JSON, signed with the contract's HMAC scheme.

One ``Notice`` describes an incident group; a channel turns it into its payload.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal, Protocol

import httpx

from self_healing_sdk.signing import sign
from selfheal.configfile import NotificationConfig
from selfheal.types import Severity

NoticeKind = Literal["trigger", "resolve", "update"]
_PD_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "info",
}
_COLOUR = {"trigger": "attention", "resolve": "good", "update": "accent"}


@dataclass(frozen=True)
class Notice:
    """What people are told about one incident group."""

    kind: NoticeKind
    tenant_id: str
    group_id: int
    title: str
    severity: Severity
    reason: str
    services: list[str]
    cause_service: str | None = None
    incidents: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    link: str | None = None

    @property
    def dedup_key(self) -> str:
        """Stable per group, so a resolve closes exactly what the trigger opened."""
        return f"selfheal/{self.tenant_id}/group/{self.group_id}"

    @property
    def headline(self) -> str:
        """One line: what happened and where."""
        prefix = {"trigger": "Escalated", "resolve": "Resolved", "update": "Update"}[self.kind]
        return f"[selfheal] {prefix}: {self.title}"

    def as_dict(self) -> dict[str, Any]:
        """The generic JSON form."""
        return {
            "event": {
                "trigger": "incident.escalated",
                "resolve": "incident.resolved",
                "update": "incident.update",
            }[self.kind],
            "tenant_id": self.tenant_id,
            "group_id": self.group_id,
            "dedup_key": self.dedup_key,
            "title": self.title,
            "severity": self.severity.value,
            "reason": self.reason,
            "cause_service": self.cause_service,
            "services": self.services,
            "incidents": self.incidents,
            "timeline": self.timeline,
            "link": self.link,
        }

    def text(self) -> str:
        """A plain-text body (e-mail, fallbacks)."""
        lines = [self.headline, "", self.reason, ""]
        if self.cause_service:
            lines.append(f"Probable cause: {self.cause_service}")
        lines.append(f"Severity: {self.severity.value}")
        lines.append(f"Services ({len(self.services)}): {', '.join(self.services)}")
        if self.timeline:
            lines += ["", "Timeline:"]
            lines += [
                f"  {step['at']}  {step['kind']:<18} {step['message']}" for step in self.timeline
            ]
        if self.link:
            lines += ["", self.link]
        return "\n".join(lines)


class Channel(Protocol):
    """Delivers notices; ``deliver`` raises on failure so the caller can record it."""

    config: NotificationConfig

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """Send one notice."""
        ...


class _HttpChannel:
    def __init__(self, client: httpx.AsyncClient, config: NotificationConfig) -> None:
        self.client = client
        self.config = config

    async def _post(
        self, payload: dict[str, Any], timeout: float, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        assert self.config.url is not None
        response = await self.client.post(
            self.config.url,
            content=body,
            headers={"Content-Type": "application/json"} | (headers or {}),
            timeout=timeout,
        )
        if not response.is_success:
            raise httpx.HTTPStatusError(
                f"{self.config.type} channel answered {response.status_code}",
                request=response.request,
                response=response,
            )


class WebhookChannel(_HttpChannel):
    """Our JSON, signed so the receiver can trust it."""

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """POST the notice as JSON."""
        payload = notice.as_dict()
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = sign(self.config.secret, "selfheal", body) if self.config.secret else {}
        assert self.config.url is not None
        response = await self.client.post(
            self.config.url,
            content=body,
            headers={"Content-Type": "application/json"} | headers,
            timeout=timeout,
        )
        response.raise_for_status()


class SlackChannel(_HttpChannel):
    """Slack incoming webhook: ``text`` as the fallback plus Block Kit blocks."""

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """POST a Slack message."""
        fields = [
            {"type": "mrkdwn", "text": f"*Severity*\n{notice.severity.value}"},
            {"type": "mrkdwn", "text": f"*Services*\n{len(notice.services)}"},
        ]
        if notice.cause_service:
            fields.append({"type": "mrkdwn", "text": f"*Probable cause*\n{notice.cause_service}"})
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": notice.headline[:150]}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": notice.reason[:3000]},
                "fields": fields,
            },
        ]
        if notice.timeline:
            steps = "\n".join(f"`{s['kind']}` {s['message']}" for s in notice.timeline[-10:])
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": steps[:3000]}})
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{', '.join(notice.services)[:2000]}"}],
            }
        )
        await self._post({"text": notice.headline, "blocks": blocks}, timeout)


class TeamsChannel(_HttpChannel):
    """Microsoft Teams (Workflows / incoming webhook): a message with an Adaptive Card."""

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """POST a Teams message."""
        facts = [
            {"title": "Severity", "value": notice.severity.value},
            {"title": "Services", "value": ", ".join(notice.services)[:1000]},
        ]
        if notice.cause_service:
            facts.append({"title": "Probable cause", "value": notice.cause_service})
        body: list[dict[str, Any]] = [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "text": notice.headline,
                "color": _COLOUR[notice.kind],
                "wrap": True,
            },
            {"type": "TextBlock", "text": notice.reason, "wrap": True},
            {"type": "FactSet", "facts": facts},
        ]
        if notice.timeline:
            body.append(
                {
                    "type": "TextBlock",
                    "text": "\n\n".join(
                        f"{s['kind']}: {s['message']}" for s in notice.timeline[-10:]
                    ),
                    "wrap": True,
                    "isSubtle": True,
                }
            )
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": body,
        }
        if notice.link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": notice.link}]
        payload = {
            "type": "message",
            "attachments": [
                {
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": None,
                    "content": card,
                }
            ],
        }
        await self._post(payload, timeout)


class PagerDutyChannel(_HttpChannel):
    """PagerDuty Events API v2: trigger, and resolve with the same dedup key."""

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """POST an event to the Events API."""
        event: dict[str, Any] = {
            "routing_key": self.config.routing_key,
            "dedup_key": notice.dedup_key,
            "event_action": "resolve" if notice.kind == "resolve" else "trigger",
        }
        if notice.kind != "resolve":
            event["payload"] = {
                "summary": notice.headline[:1024],
                "source": notice.cause_service
                or (notice.services[0] if notice.services else "selfheal"),
                "severity": _PD_SEVERITY[notice.severity],
                "component": notice.cause_service or None,
                "group": notice.tenant_id,
                "class": ", ".join(sorted({i.get("type", "") for i in notice.incidents})) or None,
                "custom_details": {
                    "reason": notice.reason,
                    "services": notice.services,
                    "incidents": notice.incidents,
                    "timeline": notice.timeline[-30:],
                },
            }
            if notice.link:
                event["links"] = [{"href": notice.link, "text": "selfheal"}]
        await self._post(event, timeout)


class EmailChannel:
    """Plain-text e-mail through SMTP; the blocking client runs in a thread."""

    def __init__(self, config: NotificationConfig) -> None:
        self.config = config

    async def deliver(self, notice: Notice, *, timeout: float) -> None:
        """Send one message to every recipient."""
        message = EmailMessage()
        message["Subject"] = notice.headline
        message["From"] = self.config.from_addr or "selfheal@localhost"
        message["To"] = ", ".join(self.config.to)
        message["X-SelfHeal-Dedup-Key"] = notice.dedup_key
        message.set_content(notice.text())
        await asyncio.to_thread(self._send, message, timeout)

    def _send(self, message: EmailMessage, timeout: float) -> None:
        assert self.config.smtp_host is not None
        with smtplib.SMTP(self.config.smtp_host, self.config.smtp_port, timeout=timeout) as smtp:
            if self.config.starttls:
                smtp.starttls()
            if self.config.username and self.config.password:
                smtp.login(self.config.username, self.config.password)
            smtp.send_message(message)
