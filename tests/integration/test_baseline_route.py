"""``GET /api/services/{id}/baseline``: suggested thresholds from the service's own history,
applied only when the config says so and never over the operator's own values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from selfheal.storage.repositories import samples as samples_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT
from tests.conftest import api_client


async def _history(server: AgentServer, service_id: str, minutes: int) -> None:
    rng = random.Random(8)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rows = []
    for m in range(minutes):
        rows.append(
            {
                "tenant_id": DEFAULT_TENANT,
                "service_id": service_id,
                "minute": now - timedelta(minutes=minutes - m),
                "probes": 6,
                "ok": 6,
                "response_ms_sum": 6 * 40.0,
                "response_ms_max": 40 + abs(rng.gauss(0, 10)),
                "cpu_max": 30 + rng.gauss(0, 3),
                "memory_max": 60 + rng.gauss(0, 1),
                "error_rate_max": abs(rng.gauss(0, 0.005)),
            }
        )
    async with server.agent.db.session() as session:
        await samples_repo.merge_rollups(session=session, rows=rows)


async def test_suggested_thresholds_and_opt_in_application(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, CHECK_INTERVAL=5.0, AUTO_THRESHOLDS=True)
    async with FakeService(service_id="shop") as service, AgentServer(settings) as server:
        client = api_client(server.url)
        await client.post(
            "/api/services/register",
            json={
                "service_id": "shop",
                "health_url": service.health_url,
                "thresholds": {"cpu": 95},
            },
        )
        body = (await client.get("/api/services/shop/baseline")).json()
        assert all(t["suggested"] is None for t in body["thresholds"].values())  # no history yet

        await _history(server, "shop", 2 * 1440)
        body = (await client.get("/api/services/shop/baseline")).json()
        assert body["auto_apply"] is True
        found = body["thresholds"]
        assert found["cpu"]["set_by_operator"] is True
        assert 38 <= found["cpu"]["suggested"] <= 60
        assert 62 <= found["memory"]["suggested"] <= 75
        assert 70 <= found["response_time_ms"]["suggested"] <= 200
        assert 0.01 <= found["error_rate"]["suggested"] <= 0.1
        assert found["response_time_ms"]["basis"]["minutes"] == 2 * 1440
        assert found["latency_ms"]["suggested"] is None  # the service reports no latency_ms
        assert found["response_time_ms"]["current"] == settings.RESPONSE_TIME_THRESHOLD

        assert await server.agent.apply_learned_thresholds() == 1
        assert await server.agent.apply_learned_thresholds() == 0  # nothing new
        shown = (await client.get("/api/services/shop")).json()["thresholds"]
        assert shown["cpu"] == 95  # the operator's value stays
        assert shown["memory"] == found["memory"]["suggested"]
        assert shown["response_time_ms"] == found["response_time_ms"]["suggested"]
        # re-registering (or a config reload) keeps what was learned
        await client.post(
            "/api/services/register",
            json={
                "service_id": "shop",
                "health_url": service.health_url,
                "thresholds": {"cpu": 95},
            },
        )
        again = (await client.get("/api/services/shop")).json()["thresholds"]
        assert again == shown
        assert (await client.get("/api/services/nope/baseline")).status_code == 404
        await client.aclose()


async def test_suggestions_are_not_applied_unless_configured(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, CHECK_INTERVAL=5.0)
    async with FakeService(service_id="shop") as service, AgentServer(settings) as server:
        client = api_client(server.url)
        await client.post(
            "/api/services/register", json={"service_id": "shop", "health_url": service.health_url}
        )
        await _history(server, "shop", 1500)
        body = (await client.get("/api/services/shop/baseline")).json()
        assert body["auto_apply"] is False
        assert body["thresholds"]["memory"]["suggested"] is not None
        shown = (await client.get("/api/services/shop")).json()["thresholds"]
        assert shown["memory"] == settings.MEMORY_THRESHOLD
        await client.aclose()
