"""Bad requests get a clear 4xx in the contract's error shape, and nothing is stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY, api_client

VALID = {"service_id": "api", "health_url": "http://127.0.0.1:9/health"}


@pytest.fixture
async def server(sqlite_url: str, make_settings: Any) -> Any:
    async with AgentServer(make_settings(sqlite_url, MAX_BODY_BYTES=1_048_576)) as running:
        yield running


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    message = body["error"]["message"]
    assert isinstance(message, str)
    assert message
    for word in words:
        assert word in message, message


async def assert_nothing_stored(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/api/services")).json()
    assert listing["count"] == 0


@pytest.mark.parametrize(
    ("send", "status", "code", "words"),
    [
        ({"content": b'{"service_id": "api", '}, 400, "malformed_json", ["not valid JSON"]),
        ({"json": VALID | {"interval": "soon"}}, 422, "validation_error", ["interval"]),
        ({"json": VALID | {"tags": "a,b"}}, 422, "validation_error", ["tags"]),
        ({"json": VALID | {"retries": "three"}}, 422, "validation_error", ["retries"]),
        ({"json": VALID | {"helth_url": "x"}}, 422, "validation_error", ["helth_url", "unknown"]),
        (
            {"json": VALID | {"health_url": "ftp://127.0.0.1/health"}},
            422,
            "validation_error",
            ["health_url", "http"],
        ),
        ({"json": {"service_id": "api"}}, 422, "validation_error", ["health_url"]),
        ({"json": VALID | {"service_id": "../etc"}}, 422, "validation_error", ["service_id"]),
        # any non-empty secret is accepted (the seed's "s3cret" must work; short ones are
        # logged as weak), an empty one is not
        ({"json": VALID | {"secret": ""}}, 422, "validation_error", ["secret"]),
        ({"json": [VALID]}, 422, "validation_error", []),
        (
            {"content": b'{"pad": "' + b"x" * 2_000_000 + b'"}'},
            413,
            "payload_too_large",
            ["larger than"],
        ),
    ],
)
async def test_register_refuses_bad_bodies(
    server: AgentServer, send: dict[str, Any], status: int, code: str, words: list[str]
) -> None:
    async with api_client(server.url) as client:
        headers = {"Content-Type": "application/json"}
        response = await client.post("/api/services/register", headers=headers, **send)
        assert_error(response, status, code, *words)
        await assert_nothing_stored(client)


async def test_streamed_body_over_the_limit_is_refused(server: AgentServer) -> None:
    async def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 65536  # 2.5 MB without a Content-Length header

    async with api_client(server.url) as client:
        response = await client.post(
            "/api/services/register",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert_error(response, 413, "payload_too_large")
        await assert_nothing_stored(client)


@pytest.mark.parametrize("key", [None, "", "wrong-key", TEST_KEY + "x"])
async def test_missing_or_wrong_key_is_401(server: AgentServer, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    async with httpx.AsyncClient(base_url=server.url, headers=headers) as anonymous:
        for method, path in [
            ("POST", "/api/services/register"),
            ("GET", "/api/services"),
            ("GET", "/api/incidents"),
            ("GET", "/api/catalog"),
            ("GET", "/status"),
        ]:
            response = await anonymous.request(method, path, json=VALID)
            assert_error(response, 401, "unauthorized", "API key")
    async with api_client(server.url) as client:
        await assert_nothing_stored(client)


async def test_public_routes_need_no_key(server: AgentServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as anonymous:
        assert (await anonymous.get("/health")).status_code == 200
        openapi = (await anonymous.get("/openapi.json")).json()
        assert openapi["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
        assert "/api/services/register" in openapi["paths"]


async def test_unknown_things_are_404_in_the_error_shape(server: AgentServer) -> None:
    async with api_client(server.url) as client:
        assert_error(await client.get("/api/services/nope"), 404, "not_found", "nope")
        assert_error(await client.get("/api/incidents/999"), 404, "not_found")
        assert_error(await client.get("/api/nothing-here"), 404, "not_found")
        assert_error(
            await client.get("/api/incidents", params={"limit": 0}), 422, "validation_error"
        )
        assert_error(await client.get("/api/incidents", params={"cursor": "x"}), 400, "bad_request")
