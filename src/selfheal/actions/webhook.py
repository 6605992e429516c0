"""Asking the service to heal itself: a signed POST to its webhook (the SDK answers).

Body ``{"action", "incident_id", "action_id", "params"}``, signed per the
contract; a 2xx answer means done. The action id is also the idempotency key a
service may use to ignore a duplicate delivery.

The call goes through the tenant's outbound session (forbidden addresses are
refused at connect time; redirects are never followed). Of the answer only the
status code is kept, plus its ``detail`` text (at most ``DETAIL_LIMIT``
characters) when the answer is signed with the service's secret, as the SDK
signs its answers: a URL pointing elsewhere cannot make the agent store and
show what that other server said.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import aiohttp

from self_healing_sdk.signing import SignatureError, sign, verify
from selfheal.actions.base import ActionRequest, ActionResult
from selfheal.errors import ActionError
from selfheal.outbound import OutboundSessions, refused_by_policy

DETAIL_LIMIT = 200
MAX_ANSWER_BYTES = 65_536


class WebhookExecutor:
    """Signed webhook to the service's ``webhook_url``."""

    name = "webhook"

    def __init__(self, sessions: OutboundSessions) -> None:
        self._sessions = sessions

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
        session = self._sessions.for_tenant(spec.tenant_id)
        try:
            async with session.post(
                spec.webhook_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=request.timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                answer = await response.content.read(MAX_ANSWER_BYTES)
                answer_headers = response.headers
        except TimeoutError:
            return ActionResult(False, f"webhook did not answer within {request.timeout:g}s")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            refused = refused_by_policy(exc)
            if refused is not None:
                return ActionResult(False, f"webhook {refused}")
            return ActionResult(False, f"webhook unreachable: {type(exc).__name__}")
        detail = signed_detail(request, answer_headers, answer)
        data = {"status_code": status, "signed": detail is not None}
        text = f"service answered {status}" + (f": {detail}" if detail else "")
        return ActionResult(200 <= status < 300, text, data)


def signed_detail(request: ActionRequest, headers: Mapping[str, str], raw: bytes) -> str | None:
    """The answer's ``detail`` if the service signed it for this action; None otherwise.

    An unsigned or wrongly signed answer yields nothing (not even an empty
    string), so the caller can tell the two apart.
    """
    spec = request.spec
    assert spec.secret is not None
    try:
        verify(spec.secret, headers, raw, service_id=spec.service_id)
        answer = json.loads(raw)
    except (SignatureError, ValueError):
        return None
    if not isinstance(answer, dict):
        return None
    if answer.get("action_id", request.action_id) != request.action_id:
        return None  # signed, but for another delivery
    detail = answer.get("detail")
    if not isinstance(detail, str):
        return ""
    return detail[:DETAIL_LIMIT]
