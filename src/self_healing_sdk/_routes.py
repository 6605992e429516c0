"""What every framework integration shares: paths, the health answer, the body limit."""

from __future__ import annotations

import json

from self_healing_sdk._agent import SelfHealingAgent
from self_healing_sdk._async_agent import AsyncSelfHealingAgent
from self_healing_sdk._core import AgentCore

AnyAgent = SelfHealingAgent | AsyncSelfHealingAgent
"""Either agent: the routes only use what the two share."""

HEALTH_PATH = "/health"
WEBHOOK_PATH = "/webhook"
MAX_WEBHOOK_BYTES = 1_048_576


def health_answer(agent: AgentCore) -> tuple[int, bytes]:
    """``/health``: the contract's JSON; 503 when the service says it is down."""
    status = agent.health()
    body = json.dumps(status.as_health_json(), separators=(",", ":"), default=str).encode()
    return (503 if status.status == "down" else 200), body


def too_large() -> bytes:
    """The body of a 413 answer."""
    return json.dumps(
        {"ok": False, "error": {"code": "payload_too_large", "message": "body too large"}}
    ).encode()
