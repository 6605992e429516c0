"""GET /api/services/{id}/history: the rollups per interval, thresholds and incident markers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from selfheal.storage.repositories import incidents as incidents_repo
from selfheal.storage.repositories import samples as samples_repo
from selfheal.testing import AgentServer, FakeService
from tests.conftest import OTHER_TENANT_KEY, api_client

FOUND_BY_BASELINE = "latency_ms 612 is unusual (typical 205, anomaly score 0.55)"


async def test_history_has_metrics_thresholds_and_markers(
    database_url: str, make_settings: Any
) -> None:
    now = datetime.now(UTC)
    minute = now.replace(second=0, microsecond=0)
    async with (
        FakeService(service_id="api") as service,
        AgentServer(make_settings(database_url, CHECK_INTERVAL=30)) as server,
    ):
        async with api_client(server.url) as client:
            body = {"service_id": "api", "health_url": service.health_url, "interval": 30}
            assert (await client.post("/api/services/register", json=body)).status_code == 201
            async with server.agent.db.session() as session:
                rows = [
                    {
                        "tenant_id": "default",
                        "service_id": "api",
                        "minute": minute - timedelta(minutes=m),
                        "probes": 10,
                        "ok": 10,
                        "response_ms_sum": 10 * (20.0 + m),
                        "response_ms_max": 30.0 + m,
                        "cpu_max": 10.0 + m,
                        "memory_max": 40.0,
                        "error_rate_max": 0.01,
                        "latency_ms_max": 200.0 + m,
                    }
                    for m in (5, 6, 7)
                ]
                await samples_repo.merge_rollups(session=session, rows=rows)
                for kind, symptom, ago in (
                    (
                        "high_latency",
                        "latency_ms 612 is unusual (typical 205, anomaly score 0.55)",
                        6,
                    ),
                    ("http_error", "HTTP 500", 3),
                ):
                    await incidents_repo.open_incident(
                        session=session,
                        tenant_id="default",
                        service_id="api",
                        type=kind,
                        severity="medium",
                        summary="",
                        details={"symptom": symptom},
                        at=now - timedelta(minutes=ago),
                    )
            history = (await client.get("/api/services/api/history", params={"range": "1h"})).json()
            assert history["bucket_seconds"] == 60
            assert len(history["points"]) == 60
            filled = [p for p in history["points"] if p["probes"]]
            assert [p["latency_ms"] for p in filled] == [207.0, 206.0, 205.0]
            assert [p["response_ms"] for p in filled] == [27.0, 26.0, 25.0]
            assert [p["cpu"] for p in filled] == [17.0, 16.0, 15.0]
            assert history["thresholds"]["response_ms"] > 0
            assert set(history["thresholds"]) == {
                "response_ms",
                "latency_ms",
                "error_rate",
                "cpu",
                "memory",
            }
            markers = {i["type"]: i["anomaly"] for i in history["incidents"]}
            assert markers == {"high_latency": True, "http_error": False}
            wide = (await client.get("/api/services/api/history", params={"range": "7d"})).json()
            assert sum(p["probes"] for p in wide["points"]) == 30
            missing = await client.get("/api/services/nope/history")
            assert missing.status_code == 404
            bad = await client.get("/api/services/api/history", params={"range": "2y"})
            assert bad.status_code == 422
        async with api_client(server.url, key=OTHER_TENANT_KEY) as other:
            # another tenant does not see it (its key is not even known here: 401 or 404)
            assert (await other.get("/api/services/api/history")).status_code in (401, 404)
