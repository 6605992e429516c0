"""GraphiQL in headless chromium: it runs a query against /graphql with the key, offline."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser

from selfheal.testing import AgentServer, FakeService
from tests.browser.conftest import new_page, screenshot
from tests.conftest import TEST_KEY, api_client

pytestmark = pytest.mark.browser


async def test_graphiql_answers_a_query_with_the_key(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="shop") as shop,
        AgentServer(make_settings(sqlite_url)) as server,
    ):
        client = api_client(server.url)
        body = {"service_id": "shop", "health_url": shop.health_url}
        assert (await client.post("/api/services/register", json=body)).status_code == 201
        page, errors = await new_page(browser)
        outside: list[str] = []
        page.on(
            "request",
            lambda r: None if r.url.startswith(server.url) else outside.append(r.url),
        )
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
        await page.goto(f"{server.url}/graphql")
        await page.fill("#api-key", TEST_KEY)
        await page.click("#key-form button")
        await page.wait_for_selector(".graphiql-container")
        await page.click(".graphiql-execute-button")
        result = page.locator(".result-window")
        await result.get_by_text('"shop"').wait_for(timeout=15_000)
        await screenshot(page, "graphiql")
        assert outside == []
        assert errors == []
        assert not [m for m in console if "Content Security Policy" in m], console
        await client.aclose()
