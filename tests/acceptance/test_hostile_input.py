"""Inputs that once made the API answer 500 (or accept nonsense) now get a clear 4xx.

Each case was found by hand or by schemathesis (issue 10); each runs on SQLite and
PostgreSQL, since the two databases failed in different ways.
"""

from __future__ import annotations

from typing import Any

import pytest

from self_healing_sdk.signing import sign
from selfheal.testing import AgentServer
from tests.acceptance.test_bad_input import assert_error
from tests.conftest import api_client

VALID = {"service_id": "api", "health_url": "http://127.0.0.1:9/health"}
PAST_64_BITS = "99999999999999999999"  # > 2**64


@pytest.fixture
async def server(database_url: str, make_settings: Any) -> Any:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as running:
        yield running


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/incidents/{PAST_64_BITS}"),
        ("POST", f"/api/incidents/{PAST_64_BITS}/ack"),
        ("POST", f"/api/incidents/{PAST_64_BITS}/resolve"),
        ("POST", f"/api/incidents/{PAST_64_BITS}/approve"),
        ("DELETE", f"/api/silences/{PAST_64_BITS}"),
        ("GET", f"/api/groups/{PAST_64_BITS}"),
        ("GET", "/api/incidents/-1"),
    ],
)
async def test_ids_past_64_bits_are_422(server: AgentServer, method: str, path: str) -> None:
    async with api_client(server.url) as client:
        response = await client.request(method, path)
    assert_error(response, 422, "validation_error", "_id")


@pytest.mark.parametrize("route", ["/api/incidents", "/api/actions"])
@pytest.mark.parametrize(
    ("cursor", "words"),
    [
        (PAST_64_BITS, ["cursor"]),
        ("9223372036854775808", ["cursor", "next_cursor", "at most"]),  # 2**63: past any id
        ("\u00b2", ["cursor"]),  # "²".isdigit() is true; int("²") raises
        ("\u0663", ["cursor"]),  # an Arabic-Indic three
        ("-5", ["cursor"]),
    ],
)
async def test_bad_cursors_are_400(
    server: AgentServer, route: str, cursor: str, words: list[str]
) -> None:
    async with api_client(server.url) as client:
        response = await client.get(route, params={"cursor": cursor})
    assert_error(response, 400, "bad_request", *words)


async def test_the_largest_cursor_still_pages(server: AgentServer) -> None:
    async with api_client(server.url) as client:
        response = await client.get("/api/incidents", params={"cursor": str(2**63 - 1)})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/services/register", VALID | {"name": "pay\u0000ments"}),
        ("POST", "/api/services/register", VALID | {"tags": ["a\u0000"]}),
        ("POST", "/api/services/register", VALID | {"metadata": {"team": "o\u0000ps"}}),
        ("POST", "/api/services/register", VALID | {"metadata": {"k\u0000": 1}}),
        ("PATCH", "/api/services/api", {"name": "x\u0000"}),
        ("POST", "/api/automation/pause", {"reason": "deploy\u0000"}),
        (
            "POST",
            "/api/silences",
            {"matchers": {"service_id": "api"}, "duration": 60, "comment": "a\u0000b"},
        ),
        (
            "PUT",
            "/api/catalog",
            {"entries": {"timeout": [{"action": "restart", "params": {"a": "\u0000"}}]}},
        ),
    ],
)
async def test_nul_characters_are_422(
    server: AgentServer, method: str, path: str, body: dict[str, Any]
) -> None:
    async with api_client(server.url) as client:
        assert (await client.post("/api/services/register", json=VALID)).status_code == 201
        response = await client.request(method, path, json=body)
        assert_error(response, 422, "validation_error", "NUL", "remove it")
        # nothing half-stored, and the service as it was
        service = (await client.get("/api/services/api")).json()
        assert service["name"] == "api"
        assert service["tags"] == []


@pytest.mark.parametrize(
    ("field", "raw", "words"),
    [
        ("interval", "1e20", ["interval", "at most"]),
        ("interval", "Infinity", ["interval"]),
        ("interval", "NaN", ["interval"]),
        ("timeout", "1e20", ["timeout", "at most"]),
        ("cooldown", "Infinity", ["cooldown"]),
        ("retry_delay", "1e300", ["retry_delay"]),
        ("heartbeat_timeout", "-Infinity", ["heartbeat_timeout"]),
        ("grace", '"99999999999999999999d"', ["grace"]),
        # 0.001 s made every probe time out (the timeout is capped at the interval), so a
        # healthy service was reported down
        ("interval", "0.001", ["interval", "between 1 and 86400 seconds"]),
        ("interval", '"500ms"', ["interval", "between 1 and 86400 seconds"]),
        ("timeout", "0.001", ["timeout", "between 0.1 and 300 seconds"]),
        ("metadata", '{"x": NaN}', ["finite"]),
    ],
)
async def test_unbounded_durations_are_422(
    server: AgentServer, field: str, raw: str, words: list[str]
) -> None:
    body = b'{"service_id": "api", "health_url": "http://127.0.0.1:9/health", "%s": %s}' % (
        field.encode(),
        raw.encode(),
    )
    async with api_client(server.url) as client:
        response = await client.post(
            "/api/services/register", content=body, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 422, "validation_error", *words)
        assert (await client.get("/api/services")).json()["count"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {"duration": 1e20},
        {"duration": "100000d"},
        {"ends_at": "9999-12-31T23:59:59Z"},
        {"starts_at": "9999-12-31T23:59:59Z", "duration": 3600},
        {"starts_at": "0001-01-01T00:00:00Z", "duration": 3600},
    ],
)
async def test_silences_far_in_time_are_422(server: AgentServer, body: dict[str, Any]) -> None:
    async with api_client(server.url) as client:
        response = await client.post(
            "/api/silences", json={"matchers": {"service_id": "api"}, "comment": "x"} | body
        )
    assert_error(response, 422, "validation_error")


async def test_sane_values_are_still_accepted(server: AgentServer) -> None:
    async with api_client(server.url) as client:
        response = await client.post(
            "/api/services/register",
            json=VALID
            | {"interval": "1s", "timeout": 0.5, "cooldown": "7d", "metadata": {"n": 2**70}},
        )
        assert response.status_code == 201, response.text
        service = response.json()["service"]
        assert (service["interval"], service["timeout"], service["cooldown"]) == (1, 0.5, 604800)


@pytest.mark.parametrize(
    "event",
    [
        b'{"type": "error", "message": "boom\\u0000"}',
        b'{"type": "heartbeat", "latency_ms": Infinity}',
        b'{"type": "heartbeat", "requests": 99999999999999999999}',
        b'{"type": "heartbeat", "metadata": {"x": NaN}}',
    ],
)
async def test_signed_pushes_out_of_bounds_are_422(server: AgentServer, event: bytes) -> None:
    secret = "push-secret-0123456789"
    async with api_client(server.url) as client:
        registered = await client.post("/api/services/register", json=VALID | {"secret": secret})
        assert registered.status_code == 201, registered.text
        response = await client.post(
            "/api/services/api/events", content=event, headers=sign(secret, "api", event)
        )
        assert_error(response, 422, "validation_error", "invalid event")
