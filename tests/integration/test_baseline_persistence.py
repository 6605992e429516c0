"""Learned baselines survive a restart of the agent, and go away with their service."""

from __future__ import annotations

import random
import time
from typing import Any

from selfheal.checks.sample import Sample
from selfheal.storage.repositories import learning as learning_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT, ServiceKey
from tests.conftest import api_client


async def test_baselines_are_saved_reloaded_and_removed(
    database_url: str, make_settings: Any
) -> None:
    settings = make_settings(database_url, CHECK_INTERVAL=30.0, ANOMALY_PERIOD=1.0)
    key = ServiceKey(DEFAULT_TENANT, "shop")
    rng = random.Random(3)
    async with FakeService(service_id="shop") as service:
        async with AgentServer(settings) as server:
            client = api_client(server.url)
            await client.post(
                "/api/services/register",
                json={"service_id": "shop", "health_url": service.health_url},
            )
            spec = server.agent.fleet.spec(key)
            assert spec is not None
            start = time.time() - 400
            for i in range(300):  # five minutes of synthetic probes, one a second
                sample = Sample(key, start + i, True, 5 + rng.random(), cpu=20 + rng.random())
                server.agent.monitor.observe(spec, sample)
            tracker = server.agent.baselines
            assert tracker is not None
            server.agent.score_baselines(time.time())
            while tracker.pending:  # scored in slices of 5 ms, as the agent's loop does
                server.agent.score_baselines(time.time())
            before = (await client.get("/api/services/shop/baseline")).json()["metrics"]
            assert before["cpu"]["samples"] >= 299
            await client.aclose()
        async with AgentServer(settings) as server:  # stop saved them; start loads them
            client = api_client(server.url)
            after = (await client.get("/api/services/shop/baseline")).json()["metrics"]
            assert after["cpu"] == before["cpu"]
            assert after["response_ms"]["samples"] == before["response_ms"]["samples"]
            assert (await client.delete("/api/services/shop")).status_code == 204
            async with server.agent.db.session() as session:
                rows = await learning_repo.load_baselines(session=session, service_id="shop")
            assert rows == []
            await client.aclose()
