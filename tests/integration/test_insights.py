"""Must show (issue 5, patterns): a generated history with a planted 03:00 recurrence and a
planted pair of co-failing services, amid random background trouble. ``GET /api/insights``
reports both, and nothing else: every finding it returns is one of the two."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from selfheal.learning.pattern_counts import co_failing_counts, recurring_counts
from selfheal.learning.patterns import (
    Finding,
    IncidentPoint,
    count_co_failing,
    count_recurring,
    score_co_failing,
    score_recurring,
)
from selfheal.storage.tables import Incident
from selfheal.testing import AgentServer
from selfheal.types import DEFAULT_TENANT
from tests.conftest import api_client

SERVICES = [f"svc-{i}" for i in range(10)] + ["batch", "db", "api"]
TYPES = ["high_latency", "http_error", "high_memory", "timeout"]


def history(now: datetime, seed: int = 3) -> list[tuple[str, str, datetime]]:
    rng = random.Random(seed)
    start = now - timedelta(days=29)
    rows = []
    for _ in range(250):  # background: anything, anywhere, any time
        at = start + timedelta(seconds=rng.uniform(0, 29 * 86400))
        rows.append((rng.choice(SERVICES), rng.choice(TYPES), at))
    for day in rng.sample(range(28), 18):  # batch runs out of CPU around 03:00
        base = (start + timedelta(days=day)).replace(hour=3, minute=0, second=0)
        rows.append(("batch", "high_cpu", base + timedelta(minutes=rng.uniform(-10, 10))))
    for _ in range(12):  # db trouble takes the api down with it
        at = start + timedelta(seconds=rng.uniform(0, 29 * 86400))
        rows.append(("db", "timeout", at))
        rows.append(("api", "http_error", at + timedelta(seconds=rng.uniform(5, 180))))
    return rows


def _rounded(found: list[Finding]) -> list[tuple[str, str, float]]:
    # the span and times pass through the database as floats: compare to 3 figures
    return [(f.kind, f.summary, float(f"{f.p_value:.3g}")) for f in found]


async def test_insights_report_the_planted_patterns_and_nothing_else(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, ANOMALY_DETECTION=False)
    now = datetime.now(UTC)
    async with AgentServer(settings) as server:
        async with server.agent.db.session() as session:
            for i, (service, kind, at) in enumerate(history(now)):
                session.add(
                    Incident(
                        tenant_id=DEFAULT_TENANT,
                        service_id=service,
                        type=kind,
                        fingerprint=f"{service}:{kind}:{i}",
                        severity="medium",
                        status="resolved",
                        summary="generated",
                        details={},
                        opened_at=at,
                        updated_at=at,
                        resolved_at=at + timedelta(minutes=10),
                    )
                )
        client = api_client(server.url)
        response = await client.get("/api/insights")
        await client.aclose()
        # the database's counts give the findings the in-memory counts give
        since = now - timedelta(days=30)
        points = [IncidentPoint(s, k, at) for s, k, at in history(now)]
        async with server.agent.db.session() as session:
            stored = await recurring_counts(session=session, tenant_id=DEFAULT_TENANT, since=since)
            pairs_stored = await co_failing_counts(
                session=session, tenant_id=DEFAULT_TENANT, since=since
            )
    assert stored.groups == count_recurring(points).groups
    assert score_recurring(stored) == score_recurring(count_recurring(points))
    assert _rounded(score_co_failing(pairs_stored)) == _rounded(
        score_co_failing(count_co_failing(points))
    )
    assert response.status_code == 200, response.text
    body = response.json()
    recurring, pairs = body["recurring"], body["co_failing"]
    assert recurring, body
    assert recurring[0]["data"]["service_id"] == "batch"
    assert recurring[0]["data"]["type"] == "high_cpu"
    assert recurring[0]["data"]["around"] in ("02:55", "03:00", "03:05")
    assert pairs
    assert pairs[0]["data"]["services"] == ["api", "db"]
    kinds = {f["kind"] for f in body["top"][:2]}
    assert kinds == {"recurring_time_of_day", "co_failing"}
    # nothing spurious: every finding is about a planted pattern
    for finding in body["top"]:
        data = finding["data"]
        assert data.get("service_id") == "batch" or data.get("services") == ["api", "db"], finding
    assert body["fading_fixes"] == []
