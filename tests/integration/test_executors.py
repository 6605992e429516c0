"""Executors against real things: a local shell, a loopback service, a loopback channel."""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from self_healing_sdk.signing import verify
from selfheal.actions.base import ActionRequest
from selfheal.actions.command import CommandExecutor
from selfheal.actions.notify import Notifier, NotifyExecutor
from selfheal.actions.webhook import WebhookExecutor
from selfheal.config import Settings
from selfheal.configfile import NotificationConfig, RemediationSpec
from selfheal.errors import ActionError
from selfheal.outbound import OutboundPolicies, OutboundSessions
from selfheal.services import ServiceSpec, build_spec
from selfheal.testing import FakeService, free_port
from selfheal.types import DEFAULT_TENANT, ServiceKey


def spec(**kwargs: Any) -> ServiceSpec:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return build_spec(
        settings,
        key=ServiceKey(DEFAULT_TENANT, kwargs.pop("service_id", "svc")),
        name=None,
        health_url="http://127.0.0.1:1/health",
        **kwargs,
    )


def request(service: ServiceSpec, action: str = "restart", timeout: float = 5.0) -> ActionRequest:
    return ActionRequest(
        spec=service,
        action=action,
        params={"level": 2},
        incident_id=7,
        action_id=11,
        idempotency_key="t:7:1:restart",
        timeout=timeout,
    )


def command(cmd: str | list[str], **extra: Any) -> ServiceSpec:
    return spec(remediation={"restart": RemediationSpec(exec=cmd, **extra)})


async def test_command_success_captures_output_and_context() -> None:
    result = await CommandExecutor().execute(
        request(command('echo "fixing $SELFHEAL_SERVICE_ID for $SELFHEAL_INCIDENT_ID"'))
    )
    assert result.ok
    assert result.data["exit_code"] == 0
    assert result.data["output"].strip() == "fixing svc for 7"


async def test_command_failure_and_argv_form() -> None:
    result = await CommandExecutor().execute(
        request(command([sys.executable, "-c", "import sys; print('nope'); sys.exit(3)"]))
    )
    assert not result.ok
    assert result.detail == "command exited 3"
    assert "nope" in result.data["output"]


async def test_command_timeout_kills_the_whole_group() -> None:
    started = time.monotonic()
    result = await CommandExecutor().execute(request(command("sleep 30 & sleep 30"), timeout=0.5))
    assert not result.ok
    assert "timed out" in result.detail
    assert time.monotonic() - started < 5


async def test_command_that_leaves_a_daemon_returns_promptly() -> None:
    started = time.monotonic()
    result = await CommandExecutor().execute(request(command("(sleep 5 &) ; echo started")))
    assert result.ok
    assert "started" in result.data["output"]
    assert time.monotonic() - started < 2


async def test_command_output_is_truncated() -> None:
    result = await CommandExecutor().execute(
        request(command([sys.executable, "-c", "print('x' * 100000)"]))
    )
    assert result.ok
    assert len(result.data["output"]) < 5000
    assert "bytes cut" in result.data["output"]


async def test_command_sees_no_secret_of_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "agent-secret-key-value")
    monkeypatch.setenv("API_KEYS", "agent-api-key-value")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:agent-db-password@h/db")
    monkeypatch.setenv("SELFHEAL_NAMED", "asked-for")
    result = await CommandExecutor().execute(request(command("env", env=["SELFHEAL_NAMED"])))
    assert result.ok
    printed = dict(line.split("=", 1) for line in result.data["output"].splitlines() if "=" in line)
    for secret in ("agent-secret-key-value", "agent-api-key-value", "agent-db-password"):
        assert secret not in result.data["output"]
    assert not {"SECRET_KEY", "API_KEYS", "DATABASE_URL"} & printed.keys()
    assert printed["PATH"]
    assert printed["SELFHEAL_NAMED"] == "asked-for"
    assert printed["SELFHEAL_SERVICE_ID"] == "svc"


async def test_command_printing_50_mb_keeps_a_tail_in_bounded_memory() -> None:
    script = (
        "import sys\n"
        "line = b'y' * 1023 + b'\\n'\n"
        "for _ in range(50 * 1024): sys.stdout.buffer.write(line)\n"
        "sys.stdout.buffer.write(b'THE-END\\n')\n"
    )
    tracemalloc.start()
    try:
        result = await CommandExecutor().execute(
            request(command([sys.executable, "-c", script]), timeout=60)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert peak < 2 * 1024 * 1024, f"peak Python allocations {peak} bytes"
    output = result.data["output"]
    assert output.rstrip().endswith("THE-END")
    assert len(output) < 5000
    assert f"[... {50 * 1024 * 1024 + 8 - 4096} bytes cut ...]" in output


async def test_command_without_configuration_is_an_action_error() -> None:
    with pytest.raises(ActionError):
        await CommandExecutor().execute(request(spec()))


@pytest.fixture
async def sessions() -> AsyncIterator[OutboundSessions]:
    """Outbound sessions with the default policy (the test services are on loopback)."""
    pool = OutboundSessions(OutboundPolicies())
    yield pool
    await pool.close()


async def test_webhook_is_signed_and_verified_by_the_service(sessions: OutboundSessions) -> None:
    client = sessions
    async with FakeService(service_id="svc") as service:
        target = spec(webhook_url=service.webhook_url, secret=service.secret)
        result = await WebhookExecutor(client).execute(request(target))
        assert result.ok
        assert result.data == {"status_code": 200, "signed": True}
        assert result.detail == "service answered 200: restart done"
        call = service.accepted_calls[0]
        assert call.body == {
            "action": "restart",
            "incident_id": 7,
            "action_id": 11,
            "idempotency_key": "t:7:1:restart",
            "params": {"level": 2},
        }
        # the wrong secret is refused by the service, and reported as a failure
        wrong = spec(webhook_url=service.webhook_url, secret="not-the-secret")
        refused = await WebhookExecutor(client).execute(request(wrong))
        assert not refused.ok
        assert refused.data == {"status_code": 401, "signed": False}
        assert refused.detail == "service answered 401"
        assert service.calls[-1].reason == "signature mismatch"


async def test_webhook_failures_are_results_not_exceptions(sessions: OutboundSessions) -> None:
    client = sessions
    async with FakeService(service_id="svc", action_delay=2.0) as service:
        target = spec(webhook_url=service.webhook_url, secret=service.secret)
        slow = await WebhookExecutor(client).execute(request(target, timeout=0.3))
        assert not slow.ok
        assert "did not answer" in slow.detail
    gone = spec(webhook_url=f"http://127.0.0.1:{free_port()}/webhook", secret="x" * 10)
    result = await WebhookExecutor(client).execute(request(gone))
    assert not result.ok
    assert "unreachable" in result.detail


async def test_notify_posts_a_signed_body_to_every_channel() -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((dict(request.headers), await request.read()))
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        channels = [
            NotificationConfig(
                name="oncall", url=f"http://127.0.0.1:{port}/hook", secret="chan-secret"
            ),
            NotificationConfig(name="dead", url=f"http://127.0.0.1:{free_port()}/hook"),
        ]
        async with httpx.AsyncClient() as client:
            notifier = Notifier(client, channels)
            result = await NotifyExecutor(notifier).execute(request(spec(), action="notify"))
        assert result.ok
        assert result.detail == "delivered to oncall"
        headers, body = received[0]
        verify("chan-secret", headers, body, service_id="selfheal")
        assert b'"event":"incident.update"' in body
    finally:
        await runner.cleanup()
