"""The selfheal SDK: a service joins the agent, reports its health and carries out fixes.

::

    from self_healing_sdk import SelfHealingAgent

    agent = SelfHealingAgent(agent_url="http://localhost:5000", user_id="team-a",
                             service_id="payment-api", secret="s3cret")
    agent.register(name="Payment API", health_url="http://127.0.0.1:6000/health",
                   webhook_url="http://127.0.0.1:6000/webhook", tags=["critical"])
    agent.set_health_callback(lambda status: print(status))
    agent.start_monitoring()

Ready ``/health`` and ``/webhook`` routes live in ``self_healing_sdk.flask``,
``self_healing_sdk.fastapi``, ``self_healing_sdk.asgi`` (Starlette and any ASGI
app) and ``self_healing_sdk.wsgi``; none of them is imported here, so the SDK
needs only httpx (and psutil for the process figures).
"""

from __future__ import annotations

from self_healing_sdk._actions import ActionHandler
from self_healing_sdk._agent import SelfHealingAgent
from self_healing_sdk._async_agent import AsyncSelfHealingAgent
from self_healing_sdk._figures import MetricsHook
from self_healing_sdk._models import (
    ActionView,
    AgentView,
    HealthStatus,
    IncidentView,
    RegisterResult,
    WebhookResponse,
)
from self_healing_sdk._version import __version__
from self_healing_sdk.signing import ReplayGuard, SignatureError, sign, verify

__all__ = [
    "ActionHandler",
    "ActionView",
    "AgentView",
    "AsyncSelfHealingAgent",
    "HealthStatus",
    "IncidentView",
    "MetricsHook",
    "RegisterResult",
    "ReplayGuard",
    "SelfHealingAgent",
    "SignatureError",
    "WebhookResponse",
    "__version__",
    "sign",
    "verify",
]
