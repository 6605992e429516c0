"""Asking the service to heal itself: a signed POST to its webhook (the SDK answers).

Body ``{"action", "incident_id", "action_id", "params"}``, signed per the
contract; a 2xx answer means done. The action id is also the idempotency key a
service may use to ignore a duplicate delivery.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from self_healing_sdk.signing import sign
from selfheal.actions.base import ActionRequest, ActionResult, truncate
from selfheal.errors import ActionError


class WebhookExecutor:
    """Signed webhook to the service's ``webhook_url``."""

    name = "webhook"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def execute(self, request: ActionRequest) -> ActionResult:
        """POST the action and report the service's answer."""
        spec = request.spec
        if not spec.webhook_url or not spec.secret:
            raise ActionError(f"service {spec.service_id} has no webhook URL and secret")
        body = json.dumps(
            {
                "action": request.action,
                "incident_id": request.incident_id,
                "action_id": request.action_id,
                "idempotency_key": request.idempotency_key,
                "params": request.params,
            },
            separators=(",", ":"),
        ).encode()
        headers = sign(spec.secret, spec.service_id, body) | {"Content-Type": "application/json"}
        try:
            response = await self._client.post(
                spec.webhook_url, content=body, headers=headers, timeout=request.timeout
            )
        except httpx.TimeoutException:
            return ActionResult(False, f"webhook did not answer within {request.timeout:g}s")
        except httpx.HTTPError as exc:
            return ActionResult(False, f"webhook unreachable: {type(exc).__name__}")
        data: dict[str, Any] = {"status_code": response.status_code}
        answer = _answer(response)
        if answer is not None:
            data["response"] = answer
        if response.is_success:
            return ActionResult(True, f"service answered {response.status_code}", data)
        reason = _error_message(answer)
        detail = f"service answered {response.status_code}" + (f": {reason}" if reason else "")
        return ActionResult(False, detail, data)


def _error_message(answer: Any) -> str | None:
    """The message of an ``{"error": {"message"}}`` answer (the SDK's and the API's shape)."""
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        message = answer["error"].get("message")
        if isinstance(message, str):
            return truncate(message, 500)
    return None


def _answer(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return truncate(response.text, 1024) if response.text else None
