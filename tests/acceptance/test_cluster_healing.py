"""Heal loops across real ``selfheal serve`` replicas on one PostgreSQL.

The replica healing an incident is SIGKILLed while its action is in flight: the
replica that takes the service over resumes the incident from what was written
(the action is marked interrupted and verified, never run again).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from selfheal.testing import FakeService, free_port
from tests.conftest import TEST_KEY, _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import AgentProcess, list_incidents, wait_for


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _healer_pid(url: str, incident_id: int) -> int | None:
    """The pid of the replica whose heal loop holds the incident."""
    conn = await asyncpg.connect(_plain(url))
    try:
        pid: int | None = await conn.fetchval(
            "SELECT m.pid FROM incidents i JOIN cluster_members m ON m.id = i.healer "
            "WHERE i.id = $1",
            incident_id,
        )
        return pid
    finally:
        await conn.close()


@pytest.mark.timeout(150)
async def test_sigkill_the_healing_replica_the_other_finishes(tmp_path: Path) -> None:
    name, url = await _create_postgres_database()
    async with FakeService(service_id="billing", action_delay=3.0) as service:
        config = tmp_path / "selfheal.yaml"
        service_entry = {
            "id": "billing",
            "health_url": service.health_url,
            "webhook_url": service.webhook_url,
            "secret": "${BILLING_SECRET}",
            "interval": "1s",
            "timeout": "0.8s",
            "retry_delay": "0.5s",
            "cooldown": 0,
        }
        config.write_text(yaml.safe_dump({"services": [service_entry]}))
        env = {
            "DATABASE_URL": url,
            "API_KEYS": TEST_KEY,
            "SECRET_KEY": "cluster-heal-secret-key-0123456789",
            "DATA_DIR": str(tmp_path / "data"),
            "BILLING_SECRET": service.secret,
            "VERIFY_INTERVAL": "0.3",
            "VERIFY_TIMEOUT": "10",
            "LOG_FORMAT": "json",
        }
        replicas = [
            AgentProcess(
                config=str(config), env=env, port=free_port(), log_path=tmp_path / f"r{i}.log"
            )
            for i in range(3)
        ]
        try:
            await asyncio.gather(*(r.start(timeout=60) for r in replicas))
            await asyncio.sleep(2)  # views settle
            service.break_as("http_500")

            async def action_in_flight() -> bool:
                return len(service.accepted_calls) == 1

            await wait_for(action_in_flight, 20, interval=0.02)
            body = service.accepted_calls[0].body
            assert body is not None
            incident_id = int(body["incident_id"])
            pid = await _healer_pid(url, incident_id)
            healing = [r for r in replicas if r.proc is not None and r.proc.pid == pid]
            assert len(healing) == 1, (pid, [r.proc.pid for r in replicas if r.proc])
            healing[0].kill()
            await asyncio.wait_for(healing[0].proc.wait(), 5)  # type: ignore[union-attr]
            survivor = next(r for r in replicas if r is not healing[0])

            async with api_client(survivor.url) as client:

                async def finished() -> dict[str, Any] | None:
                    got = await client.get(f"/api/incidents/{incident_id}")
                    detail: dict[str, Any] = got.json()
                    return detail if detail["status"] in ("resolved", "escalated") else None

                detail = await wait_for(finished, 40)
                print(f"\nresolved by the survivor: {detail['resolution']}")
                assert detail["status"] == "resolved"
                assert [i["id"] for i in await list_incidents(client)] == [incident_id]
                # the action that was in flight is never run a second time, by anyone
                assert len(service.accepted_calls) == 1
                assert [a["status"] for a in detail["actions"]] == ["interrupted"]
                assert detail["actions"][0]["outcome"] == "recovered"
                kinds = [step["kind"] for step in detail["timeline"]]
                assert "action_interrupted" in kinds
            new_pid = await _healer_pid(url, incident_id)
            assert new_pid is not None
            assert new_pid != pid
            await asyncio.sleep(2)
            assert len(service.accepted_calls) == 1
        finally:
            await asyncio.gather(*(r.stop() for r in replicas))
            await _drop_postgres_database(name)
