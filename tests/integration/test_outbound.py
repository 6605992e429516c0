"""The outbound policy at connect time, against real loopback servers: names are judged
on the address they resolve to, redirects are never followed, and of a webhook's answer
only the status and a signed ``detail`` are kept."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.abc
import pytest
from aiohttp import web
from aiohttp.abc import ResolveResult

from self_healing_sdk.signing import sign
from selfheal.actions.base import ActionRequest
from selfheal.actions.webhook import WebhookExecutor
from selfheal.checks.http import HttpProbe
from selfheal.config import Settings
from selfheal.outbound import OutboundPolicies, OutboundSessions
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import DEFAULT_TENANT, ServiceKey

SECRET = "webhook-secret-0123456789"
LEAK = "AKIA-LEAKED-METADATA-CREDENTIALS"


class Target:
    """A loopback server counting hits; routes answer as each test needs."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._handle)
        self.answer: Any = self._healthy
        self.port = 0

    async def _healthy(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(request.path)
        return await self.answer(request) if callable(self.answer) else self.answer

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = Target()
    runner = web.AppRunner(server.app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield server
    await runner.cleanup()


@pytest.fixture
async def sessions() -> AsyncIterator[OutboundSessions]:
    pool = OutboundSessions(OutboundPolicies(tenant_allow={"team-c": ["127.0.0.0/8"]}))
    yield pool
    await pool.close()


def spec(tenant: str, health_url: str, **kwargs: Any) -> ServiceSpec:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    return build_spec(
        settings, key=ServiceKey(tenant, "svc"), name=None, health_url=health_url, **kwargs
    )


async def test_a_name_is_judged_on_its_resolved_address(
    target: Target, sessions: OutboundSessions
) -> None:
    probe = HttpProbe(sessions)
    url = target.url("/health", host="localhost")  # passes registration: it is a name
    refused = await probe(spec("team-b", url))
    assert not refused.ok
    assert refused.error is not None
    assert "refused by the outbound policy" in refused.error
    assert target.hits == []
    assert (await probe(spec(DEFAULT_TENANT, target.url("/health")))).ok
    assert (await probe(spec("team-c", target.url("/health")))).ok  # allowed by its config
    assert target.hits == ["/health", "/health"]


@pytest.mark.parametrize("host", ["0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]"])
async def test_other_spellings_of_loopback_never_connect_for_another_tenant(
    target: Target, sessions: OutboundSessions, host: str
) -> None:
    sample = await HttpProbe(sessions)(spec("team-b", target.url("/health", host=host)))
    assert not sample.ok
    assert target.hits == []


async def test_probe_never_follows_a_redirect(target: Target, sessions: OutboundSessions) -> None:
    secret_place = target.url("/secret")

    async def answer(request: web.Request) -> web.StreamResponse:
        if request.path == "/health":
            raise web.HTTPFound(secret_place)
        return web.json_response({"leak": LEAK})

    target.answer = answer
    sample = await HttpProbe(sessions)(spec(DEFAULT_TENANT, target.url("/health")))
    assert not sample.ok
    assert sample.status_code == 302
    assert target.hits == ["/health"]


def request(service: ServiceSpec, action_id: int = 11) -> ActionRequest:
    return ActionRequest(
        spec=service,
        action="restart",
        params={},
        incident_id=7,
        action_id=action_id,
        idempotency_key="k",
        timeout=5,
    )


def signed(body: dict[str, Any], status: int = 200, secret: str = SECRET) -> web.Response:
    raw = json.dumps(body).encode()
    headers = sign(secret, "svc", raw) | {"Content-Type": "application/json"}
    return web.Response(body=raw, status=status, headers=headers)


# answers are built when the test runs: a signature made at collection time would be
# outside the 300 s window by the time a long suite reaches the test
@pytest.mark.parametrize(
    ("answer", "ok", "detail"),
    [
        (
            lambda: web.json_response({"AccessKeyId": LEAK, "detail": LEAK}),
            True,
            "service answered 200",
        ),
        (lambda: web.json_response({"detail": LEAK}, status=500), False, "service answered 500"),
        (lambda: signed({"detail": LEAK}, secret="not-the-secret"), True, "service answered 200"),
        (lambda: signed({"detail": LEAK, "action_id": 99}), True, "service answered 200"),
        (lambda: signed({"detail": "restarted"}), True, "service answered 200: restarted"),
        (
            lambda: signed({"detail": "x" * 500}, status=500),
            False,
            "service answered 500: " + "x" * 200,
        ),
        (
            lambda: web.Response(status=307, headers={"Location": "/elsewhere"}),
            False,
            "service answered 307",
        ),
    ],
)
async def test_webhook_keeps_the_status_and_only_a_signed_detail(
    target: Target, sessions: OutboundSessions, answer: Any, ok: bool, detail: str
) -> None:
    target.answer = answer()
    service = spec(
        DEFAULT_TENANT,
        target.url("/health"),
        webhook_url=target.url("/webhook"),
        secret=SECRET,
    )
    result = await WebhookExecutor(sessions).execute(request(service))
    assert result.ok is ok
    assert result.detail == detail
    assert LEAK not in json.dumps(result.as_dict())
    assert target.hits == ["/webhook"]  # a redirect is not followed


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_webhook_to_a_refused_address_is_never_sent(
    target: Target, sessions: OutboundSessions, host: str
) -> None:
    url = target.url("/webhook", host=host)
    service = spec("team-b", target.url("/health"), webhook_url=url, secret=SECRET)
    result = await WebhookExecutor(sessions).execute(request(service))
    assert not result.ok
    assert result.detail.startswith("webhook refused by the outbound policy: ")
    assert "loopback or private address" in result.detail
    assert target.hits == []


class FlipResolver(aiohttp.abc.AbstractResolver):
    """DNS that answers a loopback address first and the metadata address after (rebinding)."""

    def __init__(self) -> None:
        self.answers = ["127.0.0.1", "169.254.169.254"]

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        return None


async def test_a_name_that_rebinds_to_the_metadata_address_is_refused(target: Target) -> None:
    sessions = OutboundSessions(
        OutboundPolicies(tenant_allow={"team-c": ["127.0.0.0/8"]}), resolver=FlipResolver()
    )
    probe = HttpProbe(sessions)
    try:
        url = f"http://rebind.test:{target.port}/health"  # a name passes registration
        assert (await probe(spec("team-c", url))).ok
        # the pooled connection is gone and the name now points at the metadata service
        await sessions.close()
        second = await probe(spec("team-c", url))
    finally:
        await sessions.close()
    assert not second.ok
    assert second.error is not None
    assert "refused by the outbound policy: 169.254.169.254" in second.error
    assert target.hits == ["/health"]
