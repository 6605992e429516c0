"""Telling people: a signed JSON POST to a generic webhook channel.

Slack, Teams, PagerDuty and e-mail formats build on this in later work; the
generic channel is signed with the contract's scheme so receivers can trust it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from self_healing_sdk.signing import sign
from selfheal.actions.base import ActionRequest, ActionResult
from selfheal.configfile import NotificationConfig
from selfheal.logging import get_logger

log = get_logger(__name__)


class Notifier:
    """Sends one message to every configured channel; never raises."""

    def __init__(self, client: httpx.AsyncClient, channels: list[NotificationConfig]) -> None:
        self._client = client
        self._channels = channels

    @property
    def channels(self) -> list[str]:
        """Names of the configured channels."""
        return [c.name for c in self._channels]

    async def send(
        self, event: str, payload: dict[str, Any], *, timeout: float = 10.0
    ) -> list[str]:
        """Deliver ``{"event", ...payload}``; returns the channels that accepted it."""
        body = json.dumps({"event": event} | payload, separators=(",", ":"), default=str).encode()
        delivered: list[str] = []
        for channel in self._channels:
            headers = {"Content-Type": "application/json"}
            if channel.secret:
                headers |= sign(channel.secret, "selfheal", body)
            try:
                response = await self._client.post(
                    channel.url, content=body, headers=headers, timeout=timeout
                )
            except httpx.HTTPError as exc:
                log.warning("notification_failed", channel=channel.name, error=type(exc).__name__)
                continue
            if response.is_success:
                delivered.append(channel.name)
            else:
                log.warning(
                    "notification_refused", channel=channel.name, status=response.status_code
                )
        return delivered


class NotifyExecutor:
    """The ``notify`` action: tell the channels and carry on (a catalog step, not the end)."""

    name = "notify"

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Post the incident to every channel; ok if at least one accepted it."""
        delivered = await self._notifier.send(
            "action",
            {
                "service_id": request.spec.service_id,
                "incident_id": request.incident_id,
                "action_id": request.action_id,
                "params": request.params,
            },
            timeout=request.timeout,
        )
        if delivered:
            return ActionResult(True, f"delivered to {', '.join(delivered)}")
        return ActionResult(False, "no channel accepted the notification")
