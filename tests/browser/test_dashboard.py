"""The dashboard in a real browser, against the real agent and real loopback services.

Each test starts the agent (SQLite), registers loopback services through the
API, signs in through the page's form and then only watches and clicks: every
change the page shows after that arrives over the live feed, without a reload.
Screenshots go to artifacts/screenshots/.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, Response

from selfheal.storage.repositories import samples as samples_repo
from selfheal.testing import AgentServer, FakeService
from tests.browser.conftest import PHONE, SCREENSHOTS, new_page, screenshot, sign_in
from tests.conftest import TEST_KEY, api_client
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

RED_WITHIN = 2.0


async def register(client: httpx.AsyncClient, service: FakeService, **extra: Any) -> None:
    body = {
        "service_id": service.service_id,
        "health_url": service.health_url,
        "webhook_url": service.webhook_url,
        "secret": service.secret,
    } | extra
    response = await client.post("/api/services/register", json=body)
    assert response.status_code == 201, response.text


def tile(service_id: str) -> str:
    return f'.tile[data-service-id="{service_id}"]'


async def navigations(page: Page) -> int:
    """How many documents this tab has loaded (a reload would make it 2)."""
    count: int = await page.evaluate("performance.getEntriesByType('navigation').length")
    return count


async def test_wrong_key_shows_the_sign_in_error(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        page, errors = await new_page(browser)
        await sign_in(page, server.url, "not-the-right-key-42")
        error = page.locator("#signin-error")
        await error.wait_for(state="visible")
        text = await error.inner_text()
        assert "This API key was not accepted." in text
        assert "401 unauthorized: the API key is not valid" in text
        assert await page.locator("#app").is_hidden()
        assert await page.evaluate("sessionStorage.length") == 0
        assert "not-the-right-key" not in page.url
        await screenshot(page, "signin-wrong-key")
        assert errors == []


async def test_sign_in_keeps_the_key_in_the_session_and_out_of_urls(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        page, errors = await new_page(browser)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))
        ws_urls: list[str] = []
        page.on("websocket", lambda ws: ws_urls.append(ws.url))
        await sign_in(page, server.url, TEST_KEY)
        await page.locator("#app").wait_for(state="visible")
        await page.locator('#feed-state[data-state="live"]').wait_for()
        assert await page.inner_text("#tenant") == "tenant default"
        stored = await page.evaluate("sessionStorage.getItem('selfheal.apiKey')")
        assert stored == TEST_KEY
        assert await page.evaluate("localStorage.getItem('selfheal.apiKey')") is None
        assert ws_urls == [server.url.replace("http", "ws") + "/api/events/ws"]
        # a reload stays signed in (same tab); signing out forgets the key
        await page.reload()
        await page.locator("#app").wait_for(state="visible")
        await page.click("#signout")
        await page.locator("#signin").wait_for(state="visible")
        assert await page.evaluate("sessionStorage.length") == 0
        assert not [u for u in urls + ws_urls + [page.url] if TEST_KEY in u]
        assert errors == []


async def test_broken_service_turns_red_live_and_its_incident_timeline_appears(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_url, VERIFY_TIMEOUT=2)
    async with (
        FakeService(service_id="payments") as payments,
        FakeService(service_id="checkout", heals=False) as checkout,
        FakeService(service_id="search") as search,
        AgentServer(settings) as server,
        api_client(server.url) as client,
    ):
        await register(client, payments, name="Payments API", tags=["critical", "api"])
        await register(client, checkout, name="Checkout", tags=["web"])
        await register(client, search, name="Search", tags=["api"])
        page, errors = await new_page(browser)
        await sign_in(page, server.url, TEST_KEY)
        for sid in ("payments", "checkout", "search"):
            await page.locator(f'{tile(sid)}[data-status="up"]').wait_for()
        await page.locator('#feed-state[data-state="live"]').wait_for()

        broke = time.monotonic()
        payments.break_as("http_500")
        checkout.break_as("http_500")
        await page.locator(f'{tile("payments")}[data-status="down"]').wait_for(
            timeout=RED_WITHIN * 1000
        )
        red_after = time.monotonic() - broke
        assert red_after < RED_WITHIN
        colour = await page.locator(tile("payments")).evaluate(
            "t => getComputedStyle(t).borderLeftColor"
        )
        assert colour == "rgb(212, 42, 30)"  # --down in the light theme
        assert await navigations(page) == 1  # no reload happened

        # the incident shows up live in the list; its timeline fills as the agent works
        await page.click('a[data-tab="incidents"]')
        await page.select_option("#incident-filter", "all")  # payments may be healed already
        item = page.locator('.incident-item[data-service-id="payments"]')
        await item.wait_for()
        await item.click()
        steps = page.locator("#incident-body .timeline li")
        await page.locator('.timeline li[data-kind="resolved"]').wait_for(timeout=15_000)
        kinds = await steps.evaluate_all("items => items.map(i => i.dataset.kind)")
        assert kinds[0] == "detected"
        assert {"decided", "action_succeeded", "verifying", "resolved"} <= set(kinds)
        stages = await page.locator(".stepper .step").evaluate_all(
            "s => Object.fromEntries(s.map(x => [x.dataset.stage, x.dataset.state]))"
        )
        assert stages == {
            "detected": "done",
            "decided": "done",
            "held": "todo",
            "acted": "done",
            "verified": "done",
        }
        reason = await page.inner_text(".decision-reason")
        assert reason.startswith("restart: ")
        assert "catalog order decides" in reason
        assert await page.inner_text(".confidence-value") == "0.50"
        assert await navigations(page) == 1

        # the fleet once checkout has been given up on, then the incident views
        await page.click('a[data-tab="fleet"]')
        await page.locator(f'{tile("checkout")}[data-status="down"]').wait_for()
        await page.locator(f'{tile("payments")}[data-status="up"]').wait_for(timeout=10_000)
        await screenshot(page, "fleet-laptop-light", theme="light")
        await screenshot(page, "fleet-laptop-dark", theme="dark")
        await page.click('a[data-tab="incidents"]')
        await page.locator('.incident-item[data-status="escalated"]').wait_for(timeout=20_000)
        await page.locator('.incident-item[data-service-id="checkout"]').click()
        await page.locator('.timeline li[data-kind="escalated"]').wait_for()
        await page.set_viewport_size({"width": 1366, "height": 1100})
        await screenshot(page, "incident-escalated-laptop-light", theme="light")
        await page.click('.incident-item[data-service-id="payments"]')
        await page.locator('.timeline li[data-kind="resolved"]').wait_for()
        await screenshot(page, "incident-resolved-laptop-dark", theme="dark")
        await page.set_viewport_size(PHONE)
        await screenshot(page, "incident-phone-dark", theme="dark")
        await page.click('a[data-tab="fleet"]')
        await screenshot(page, "fleet-phone-light", theme="light")
        await page.click('a[data-tab="actions"]')
        await page.locator("#actions-table tbody tr").first.wait_for()
        await page.set_viewport_size({"width": 1366, "height": 860})
        await screenshot(page, "actions-laptop-light")
        # an hour of (made-up) probe history, so the availability chart has something to draw
        async with server.agent.db.session() as session:
            await samples_repo.merge_rollups(session=session, rows=_history())
        await page.click('a[data-tab="charts"]')
        await page.select_option("#charts-range", "1h")
        await page.locator("#chart-availability svg").wait_for()
        await page.locator("#chart-actions svg").wait_for()
        await screenshot(page, "charts-laptop-dark", theme="dark")
        await page.set_viewport_size(PHONE)
        await page.wait_for_timeout(400)  # charts redraw at the new width
        await screenshot(page, "charts-phone-light", theme="light")
        assert errors == []
    _record("red_after_seconds", round(red_after, 3))


async def _answer(page: Page, path_end: str, click: str) -> tuple[Response, dict[str, Any]]:
    async with page.expect_response(lambda r: r.url.endswith(path_end)) as info:
        await page.click(click)
    response = await info.value
    body: dict[str, Any] = await response.json()
    return response, body


async def test_incident_buttons_act_through_the_api(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    settings = make_settings(sqlite_url, VERIFY_TIMEOUT=1)
    async with (
        FakeService(service_id="billing", heals=False) as billing,
        AgentServer(settings) as server,
        api_client(server.url) as client,
    ):
        await register(client, billing, name="Billing")
        page, errors = await new_page(browser)
        await sign_in(page, server.url, TEST_KEY)
        await page.locator(f'{tile("billing")}[data-status="up"]').wait_for()
        billing.break_as("http_500")

        async def escalated() -> dict[str, Any] | None:
            found = (await client.get("/api/incidents", params={"status": "escalated"})).json()
            return found["data"][0] if found["data"] else None

        incident = await wait_for(escalated, 20)
        await page.goto(f"{server.url}/dashboard#incidents/{incident['id']}")
        await page.locator('.timeline li[data-kind="escalated"]').wait_for()
        result = page.locator("#incident-result")

        # acknowledge: 200, and the API now says who acknowledged it
        response, body = await _answer(page, "/ack", 'button[data-op="ack"]')
        assert response.status == 200
        assert response.request.headers["x-api-key"] == TEST_KEY
        await page.locator('#incident-result[data-ok="true"]').wait_for()
        shown = await result.inner_text()
        assert shown == f"Acknowledge → 200 acknowledged by {body['acknowledged_by']}"
        stored = (await client.get(f"/api/incidents/{incident['id']}")).json()
        assert stored["acknowledged_by"] == "API_KEYS[0]"
        await page.locator('button[data-op="ack"]:disabled').wait_for()

        # approve: nothing waits for approval, and the page shows the API's answer verbatim
        response, body = await _answer(page, "/approve", 'button[data-op="approve"]')
        assert response.status == 409
        await page.locator('#incident-result[data-ok="false"]').wait_for()
        assert await result.get_attribute("data-status") == "409"
        assert await result.inner_text() == f"Approve → 409 conflict {body['error']['message']}"

        # silence: the form posts to /api/silences; the agent stores it and the page says so
        await page.click('button[data-op="silence"]')
        await page.fill('#silence-form input[name="comment"]', "deploy in progress")
        async with (
            page.expect_request(lambda r: r.url.endswith("/api/silences")) as sent,
            page.expect_response(lambda r: r.url.endswith("/api/silences")) as got,
        ):
            await page.click('#silence-form button[type="submit"]')
        request, answer = await sent.value, await got.value
        posted = json.loads(request.post_data or "{}")
        assert posted["matchers"] == {"service_id": "billing"}
        assert posted["comment"] == "deploy in progress"
        assert request.headers["x-api-key"] == TEST_KEY
        await page.locator(f'#incident-result[data-status="{answer.status}"]').wait_for()
        shown = await result.inner_text()
        assert answer.status == 201
        assert shown.startswith("Silence → 201 billing silenced until")
        silences = (await client.get("/api/silences")).json()["data"]
        assert [s["matchers"]["service_id"] for s in silences] == ["billing"]
        assert silences[0]["comment"] == "deploy in progress"
        _record("silence_answer", f"{answer.status} {await answer.text()}")
        await screenshot(page, "incident-buttons-laptop-light", theme="light")

        # resolve: 200, the incident is resolved in the API and on the page
        response, body = await _answer(page, "/resolve", 'button[data-op="resolve"]')
        assert response.status == 200
        assert body["status"] == "resolved"
        stored = (await client.get(f"/api/incidents/{incident['id']}")).json()
        assert stored["status"] == "resolved"
        await page.locator('.incident-title .pill[data-value="resolved"]').wait_for()
        assert errors == []


async def test_thousand_services_render_within_a_second_and_keep_up_with_200_changes_per_second(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    from selfheal.checks.sample import Sample
    from selfheal.types import ServiceKey

    settings = make_settings(sqlite_url)
    async with (
        FakeService(service_id="fleet") as healthy,
        AgentServer(settings) as server,
        api_client(server.url) as client,
    ):
        semaphore = asyncio.Semaphore(16)

        async def add(i: int) -> None:
            down = i % 20 == 0  # 50 of them point at a closed port
            body = {
                "service_id": f"svc-{i:04d}",
                "name": f"Service {i:04d}",
                "health_url": "http://127.0.0.1:9/health" if down else healthy.health_url,
                "interval": 5,
                "tags": [["api", "web", "db", "batch"][i % 4]]
                + (["critical"] if i % 7 == 0 else []),
            }
            async with semaphore:
                response = await client.post("/api/services/register", json=body)
            assert response.status_code == 201, response.text

        await asyncio.gather(*(add(i) for i in range(1000)))

        async def all_probed() -> bool:
            fleet = (await client.get("/api/fleet")).json()
            return "unknown" not in fleet["by_status"]

        await wait_for(all_probed, 20, interval=0.5)
        page, errors = await new_page(browser)
        await sign_in(page, server.url, TEST_KEY)
        await page.locator("html[data-fleet-rendered]").wait_for()

        # first render, measured by the page itself from the start of navigation
        timings = []
        for _ in range(3):
            started = time.monotonic()
            await page.reload()
            await page.locator("html[data-fleet-rendered]").wait_for()
            wall = time.monotonic() - started
            mark = await page.evaluate(
                "performance.getEntriesByName('selfheal:fleet-rendered')[0].startTime"
            )
            timings.append((mark, wall))
        first_render_ms = max(mark for mark, _ in timings)
        assert first_render_ms < 1000, timings
        assert await page.inner_text('b[data-count=""]') == "1000"
        assert await page.inner_text('b[data-count="down"]') == "50"
        rendered = await page.locator(".tile").count()
        assert 0 < rendered < 200  # virtualised: only what is in view exists
        await screenshot(page, "fleet-1000-laptop-light", theme="light")

        # filters: search, status, tag
        await page.fill("#fleet-search", "service 0999")
        await page.locator('b[data-count=""]:text-is("1")').wait_for()
        assert await page.locator(".tile").count() == 1
        await page.fill("#fleet-search", "")
        await page.click('#fleet-counts button[data-status="down"]')
        await page.locator('b[data-count=""]:text-is("1000")').wait_for()
        statuses = await page.locator(".tile").evaluate_all("t => t.map(x => x.dataset.status)")
        assert set(statuses) == {"down"}
        await page.click('#fleet-counts button[data-status=""]')
        await page.select_option("#fleet-tag", "db")
        await page.locator('b[data-count=""]:text-is("250")').wait_for()
        await page.select_option("#fleet-tag", "")

        # 200 status changes per second for 3 s, straight into the monitor
        agent = server.agent
        specs = [agent.fleet.spec(ServiceKey("default", f"svc-{i:04d}")) for i in range(1, 1000)]
        flappers = [s for s in specs if s is not None and not s.service_id.endswith("0")][:400]
        received_before = await page.evaluate("window.__selfheal.feed.received")
        sent = 0
        started = time.monotonic()
        for tick in range(30):  # 30 x 100 ms
            for spec in flappers[(tick % 2) * 200 : (tick % 2) * 200 + 20]:
                state = agent.monitor.state(spec.key)
                assert state is not None
                ok = state.status.value != "up"
                agent.monitor.observe(spec, Sample(spec.key, time.time(), ok, 1.0))
                sent += 1
            await asyncio.sleep(max(0.0, started + (tick + 1) * 0.1 - time.monotonic()))
        rate = sent / (time.monotonic() - started)

        async def page_matches_agent() -> bool:
            shown: dict[str, str] = await page.evaluate(
                "Object.fromEntries([...window.__selfheal.views.fleet.services.values()]"
                ".map(r => [r.id, r.status]))"
            )
            return all(
                shown[s.service_id] == agent.monitor.state(s.key).status.value  # type: ignore[union-attr]
                for s in flappers
            )

        settled = time.monotonic()
        await wait_for(page_matches_agent, 2, interval=0.05)
        caught_up = time.monotonic() - settled
        received = await page.evaluate("window.__selfheal.feed.received") - received_before
        assert received >= sent  # every status change reached the page (plus probe digests)
        assert caught_up < 1.0
        assert await navigations(page) == 1
        assert errors == []
    _record("first_render_ms", [round(m) for m, _ in timings])
    _record("reload_to_render_wall_s", [round(w, 3) for _, w in timings])
    _record("status_changes_sent_per_s", round(rate, 1))
    _record("page_caught_up_after_s", round(caught_up, 3))


def _history() -> list[dict[str, Any]]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for service, failing in (("payments", 3), ("checkout", 9), ("search", 0)):
        for m in range(2, 55):
            rows.append(
                {
                    "tenant_id": "default",
                    "service_id": service,
                    "minute": now - timedelta(minutes=m),
                    "probes": 60,
                    "ok": 60 - (failing if m % 10 == 0 else 0),
                    "response_ms_sum": 60 * 12.0,
                    "response_ms_max": 30.0,
                    "cpu_max": None,
                    "memory_max": None,
                    "error_rate_max": None,
                }
            )
    return rows


def _record(name: str, value: Any) -> None:
    """Figures for the issue note: artifacts/browser-figures.json."""
    path = SCREENSHOTS.parent / "browser-figures.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = value
    path.write_text(json.dumps(figures, indent=2) + "\n")
