"""Must show (issue 15): a service's metric history in the drawer, with markers and thresholds.

Six hours of made-up minute rollups for one real loopback service (latency
creeping up, then a step the learned baseline flagged, CPU nearing its
threshold) and two incidents: one found by the learned baseline (an anomaly
mapped to ``high_latency``) and one by a static threshold. The drawer draws
the five metrics with the thresholds dashed and both markers; hovering shows
the value under the cursor. Screenshot: artifacts/screenshots/history-drawer-*.png.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser

from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import samples as samples_repo
from selfheal.testing import AgentServer, FakeService
from tests.browser.conftest import PHONE, new_page, screenshot, sign_in
from tests.browser.test_dashboard import register, tile
from tests.conftest import TEST_KEY, api_client

FOUND_BY_BASELINE = "latency_ms 612 is unusual (typical 205, anomaly score 0.57)"

pytestmark = pytest.mark.browser


async def test_drawer_draws_metric_history_with_markers_thresholds_and_hover(
    browser: Browser, sqlite_url: str, make_settings: Any
) -> None:
    async with (
        FakeService(service_id="orders") as orders,
        AgentServer(make_settings(sqlite_url)) as server,
        api_client(server.url) as client,
    ):
        await register(client, orders, name="Orders API")
        now = datetime.now(UTC)
        async with server.agent.db.session() as session:
            await samples_repo.merge_rollups(session=session, rows=_rollups(now))
            for kind, symptom, ago in (
                ("high_latency", FOUND_BY_BASELINE, 95),
                ("http_error", "HTTP 500", 200),
            ):
                await incidents_repo.open_incident(
                    session=session,
                    tenant_id="default",
                    service_id="orders",
                    type=kind,
                    severity="medium",
                    summary=f"Orders API: {kind}",
                    details={"symptom": symptom},
                    at=now - timedelta(minutes=ago),
                )
        page, errors = await new_page(browser, {"width": 1366, "height": 1300})
        await sign_in(page, server.url, TEST_KEY)
        await page.locator(tile("orders")).click()
        await page.locator('#history[data-loaded="6h"]').wait_for()

        metrics = await page.locator(".history-metric").evaluate_all(
            "f => f.map(x => x.dataset.metric)"
        )
        assert metrics == ["response_ms", "latency_ms", "error_rate", "cpu", "memory"]
        # both markers on every chart, the anomaly one in its own colour
        assert await page.locator(".history-chart .marker.anomaly").count() == 5
        assert await page.locator(".history-chart .marker.incident").count() == 5
        anomaly_colour = await page.locator(".marker.anomaly").first.evaluate(
            "m => getComputedStyle(m).stroke"
        )
        assert anomaly_colour == "rgb(138, 63, 252)"
        # CPU runs up to 82 % under a 90 % threshold: drawn; latency's 1500 ms is far above
        cpu = page.locator('.history-metric[data-metric="cpu"]')
        assert await cpu.locator(".threshold").count() == 1
        latency = page.locator('.history-metric[data-metric="latency_ms"]')
        assert "(above)" in await latency.inner_text()

        # hover: the readout names the interval and its value
        overlay = page.locator('.history-metric[data-metric="latency_ms"] .hover')
        box = await overlay.bounding_box()
        assert box is not None
        await page.mouse.move(box["x"] + box["width"] * 0.82, box["y"] + box["height"] / 2)
        readout = await latency.locator(".readout").text_content()
        assert readout is not None
        assert readout.endswith(" ms")
        assert await latency.locator(".cursor").get_attribute("visibility") == "visible"
        await screenshot(page, "history-drawer-laptop-light", theme="light")
        await screenshot(page, "history-drawer-laptop-dark", theme="dark")

        await page.select_option("#history-range", "1h")
        await page.locator('#history[data-loaded="1h"]').wait_for()
        assert await page.locator(".history-metric").count() == 5
        # both opened before the last hour and still open: bands, no opening line
        assert await page.locator(".history-chart .marker").count() == 0
        assert await page.locator(".history-chart .span.anomaly").count() == 5
        await page.set_viewport_size(PHONE)
        await screenshot(page, "history-drawer-phone-light", theme="light")
        assert errors == []


def _rollups(now: datetime) -> list[dict[str, Any]]:
    """Six hours of minutes: a latency that creeps up, then steps at 95 minutes ago."""
    minute = now.replace(second=0, microsecond=0)
    rows = []
    for m in range(2, 360):
        wave = math.sin(2 * math.pi * m / 120)
        latency = 200 + 15 * wave + (380.0 if 80 <= m <= 95 else 0.0)
        rows.append(
            {
                "tenant_id": "default",
                "service_id": "orders",
                "minute": minute - timedelta(minutes=m),
                "probes": 12,
                "ok": 12,
                "response_ms_sum": 12 * (18 + 4 * wave),
                "response_ms_max": 30 + 4 * wave,
                "cpu_max": 60 + 20 * abs(wave) + (2.0 if m % 7 == 0 else 0.0),
                "memory_max": 40 + m / 30,
                "error_rate_max": 0.002 + (0.03 if 195 <= m <= 200 else 0.0),
                "latency_ms_max": latency,
            }
        )
    return rows
