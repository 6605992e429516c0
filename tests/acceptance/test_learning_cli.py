"""``selfheal anomaly score`` and ``selfheal report`` through click's runner."""

from __future__ import annotations

import asyncio
import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from selfheal.cli.main import cli
from selfheal.storage.db import Database
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.storage.tables import Action, Incident
from selfheal.types import DEFAULT_TENANT
from tests.integration.test_insights import history


def _write(path: Path, values: list[float]) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            writer.writerow([(start + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), v])


def _scores(path: Path) -> list[float]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["timestamp", "value", "anomaly_score"]
    return [float(r["anomaly_score"]) for r in rows]


def test_anomaly_score_csv(tmp_path: Path) -> None:
    rng = random.Random(5)
    values = [50 + 10 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, 1) for i in range(1500)]
    values[1200] = 400.0
    _write(tmp_path / "in.csv", values)
    result = CliRunner().invoke(
        cli, ["anomaly", "score", str(tmp_path / "in.csv"), str(tmp_path / "out.csv")]
    )
    assert result.exit_code == 0, result.output
    scores = _scores(tmp_path / "out.csv")
    assert len(scores) == 1500
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[1200] >= 0.5
    assert max(scores[300:1200]) < 0.5
    # causal: the first 1000 rows alone score exactly the same
    _write(tmp_path / "head.csv", values[:1000])
    CliRunner().invoke(
        cli, ["anomaly", "score", str(tmp_path / "head.csv"), str(tmp_path / "head_out.csv")]
    )
    assert _scores(tmp_path / "head_out.csv") == scores[:1000]
    bad = CliRunner().invoke(cli, ["anomaly", "score", str(tmp_path / "nope.csv"), "x.csv"])
    assert bad.exit_code == 2


def test_weekly_report(tmp_path: Path, monkeypatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'report.db'}"
    now = datetime.now(UTC)

    async def fill() -> None:
        db = Database(url)
        await db.migrate()
        async with db.session() as session:
            await tenants_repo.ensure_tenant(session=session, tenant_id=DEFAULT_TENANT)
            for i, (service, kind, at) in enumerate(history(now)):
                row = Incident(
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
                    resolved_at=at + timedelta(seconds=30),
                )
                session.add(row)
                await session.flush()
                session.add(
                    Action(
                        tenant_id=DEFAULT_TENANT,
                        incident_id=row.id,
                        service_id=service,
                        incident_type=kind,
                        action="restart",
                        executor="webhook",
                        idempotency_key=f"k{i}",
                        status="succeeded",
                        started_at=at,
                        outcome="recovered" if i % 5 else "not_recovered",
                    )
                )
        await db.close()

    asyncio.run(fill())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "--days", "30"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Incidents:" in text
    assert "verified actions, 80% recovered" in text
    assert "batch: high_cpu recurs around" in text
    assert "api and db fail together" in text
