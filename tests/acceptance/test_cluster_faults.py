"""Faults across three real ``selfheal serve`` replicas, one of them SIGKILLed mid-way.

Every service breaks at once; while the fixes are in flight the replica healing
the most incidents is killed. Every fault still ends in exactly one resolved
incident and exactly one signed webhook: the survivors take the dead replica's
incidents over from what was written and never run an action twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from selfheal.testing import FakeService, free_port
from tests.conftest import TEST_KEY, _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import AgentProcess, list_incidents, wait_for

FAULTS = 50  # the figure


async def _healers(url: str) -> Counter[int]:
    """How many incidents each replica (by pid) holds."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        rows = await conn.fetch(
            "SELECT m.pid FROM incidents i JOIN cluster_members m ON m.id = i.healer"
        )
        return Counter(int(r["pid"]) for r in rows)
    finally:
        await conn.close()


@pytest.mark.timeout(240)
async def test_faults_across_the_cluster_one_webhook_each(tmp_path: Path) -> None:
    name, url = await _create_postgres_database()
    async with contextlib.AsyncExitStack() as stack:
        services = [
            await stack.enter_async_context(FakeService(service_id=f"f{i:02d}", action_delay=1.5))
            for i in range(FAULTS)
        ]
        config = tmp_path / "selfheal.yaml"
        entries = [
            {
                "id": s.service_id,
                "health_url": s.health_url,
                "webhook_url": s.webhook_url,
                "secret": "${FAKE_SECRET}",
                "interval": "1s",
                "timeout": "0.8s",
                "retry_delay": "0.5s",
                "cooldown": 0,
            }
            for s in services
        ]
        config.write_text(yaml.safe_dump({"services": entries}))
        env = {
            "DATABASE_URL": url,
            "API_KEYS": TEST_KEY,
            "SECRET_KEY": "cluster-faults-secret-key-0123456789",
            "DATA_DIR": str(tmp_path / "data"),
            "FAKE_SECRET": services[0].secret,
            "VERIFY_INTERVAL": "0.3",
            "VERIFY_TIMEOUT": "10",
            "WEBHOOK_TIMEOUT": "5",
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
            await asyncio.sleep(3)  # views settle, every service probed healthy
            for service in services:
                service.break_as("http_500")

            async def some_in_flight() -> bool:
                return sum(len(s.accepted_calls) for s in services) >= FAULTS // 3

            await wait_for(some_in_flight, 30, interval=0.05)
            held = await _healers(url)
            pid = held.most_common(1)[0][0]
            victim = next(r for r in replicas if r.proc is not None and r.proc.pid == pid)
            victim.kill()
            await asyncio.wait_for(victim.proc.wait(), 5)  # type: ignore[union-attr]
            survivor = next(r for r in replicas if r is not victim)
            print(f"\nkilled the replica holding {held[pid]} of {sum(held.values())} incidents")

            async with api_client(survivor.url) as client:

                async def all_resolved() -> list[dict[str, Any]] | None:
                    found = await list_incidents(client, limit=200)
                    done = [i for i in found if i["status"] == "resolved"]
                    return found if len(done) >= FAULTS else None

                incidents = await wait_for(all_resolved, 90, interval=0.5)
                await asyncio.sleep(2)
                incidents = await list_incidents(client, limit=200)
            per_service = Counter(i["service_id"] for i in incidents)
            assert len(incidents) == FAULTS, per_service
            assert set(per_service.values()) == {1}
            assert {i["status"] for i in incidents} == {"resolved"}
            calls = {s.service_id: len(s.accepted_calls) for s in services}
            assert set(calls.values()) == {1}, calls
        finally:
            await asyncio.gather(*(r.stop() for r in replicas))
    await _drop_postgres_database(name)
