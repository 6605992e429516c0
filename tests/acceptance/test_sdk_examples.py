"""The example services, as real processes, against a real agent on loopback.

- both examples register, push heartbeats, show up healthy in ``GET /api/services``,
  and their health callback receives the agent's view;
- an incident on the Flask example is healed through its own action handler,
  whose result is recorded on the action;
- a Flask example frozen with SIGSTOP is found by its silence, confirmed by one
  probe of its health URL, within 2 heartbeat intervals + the probe timeout + 1 s,
  long before the agent's (60 s) poll would have probed it.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY, api_client
from tests.helpers import list_incidents, wait_for
from tests.sdk_examples import ExampleService


async def test_examples_register_beat_and_get_the_agent_view(
    tmp_path: Path, sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server:
        beat = ("--heartbeat-interval", "0.5")
        flask = ExampleService(
            "flask_service.py",
            agent_url=server.url,
            api_key=TEST_KEY,
            log_path=tmp_path / "flask.log",
            args=beat,
        )
        fastapi = ExampleService(
            "fastapi_service.py",
            agent_url=server.url,
            api_key=TEST_KEY,
            log_path=tmp_path / "fastapi.log",
            args=beat,
        )
        client = api_client(server.url)
        try:
            await asyncio.gather(flask.start(), fastapi.start())

            async def both_up() -> list[dict[str, Any]] | None:
                services = (await client.get("/api/services")).json()["data"]
                ready = [s for s in services if s["status"] == "up" and s["last_heartbeat"]]
                return services if len(ready) == 2 else None

            services = {s["service_id"]: s for s in await wait_for(both_up, 15)}
            assert set(services) == {"payment-api", "orders-api"}
            for service_id, example in (("payment-api", flask), ("orders-api", fastapi)):
                service = services[service_id]
                assert service["metadata"]["user_id"] == "team-a"
                assert service["health_url"] == f"{example.url}/health"
                assert service["webhook_url"] == f"{example.url}/webhook"
                assert service["has_secret"]

                async def viewed(example: ExampleService = example) -> dict[str, Any] | None:
                    status = await example.status()
                    return status if status["agent"] else None

                status = await wait_for(viewed, 10)
                assert status["callbacks"] >= 1
                assert status["agent_reachable"] is True
                assert status["healthy"] is True
                assert status["agent"] == {
                    "status": "up",
                    "healthy": True,
                    "incidents": [],
                    "actions": [],
                }

            # the Flask example's payments start failing; the agent asks for a rollback
            # through the signed webhook and the example's handler carries it out
            async with httpx.AsyncClient(base_url=flask.url) as shop:
                await shop.post("/chaos", json={"error_rate": 1.0})

                async def healed() -> dict[str, Any] | None:
                    for _ in range(5):
                        await shop.get("/pay")
                    found = await list_incidents(client, service_id="payment-api")
                    if not found or found[0]["status"] != "resolved":
                        return None
                    detail: dict[str, Any] = (
                        await client.get(f"/api/incidents/{found[0]['id']}")
                    ).json()
                    return detail

                detail = await wait_for(healed, 30, interval=0.1)
                assert detail["type"] == "high_error_rate"
                action = detail["actions"][0]
                assert (action["action"], action["status"]) == ("rollback", "succeeded")
                # the SDK signs its answer, so its detail (the result) is kept
                assert action["result"]["detail"] == 'service answered 200: {"version": "1.4.1"}'
                assert action["result"]["signed"] is True
                assert action["outcome"] == "recovered"
        finally:
            await asyncio.gather(flask.stop(), fastapi.stop())
            await client.aclose()


async def test_frozen_service_is_found_by_its_silence(
    tmp_path: Path, sqlite_url: str, make_settings: Any
) -> None:
    interval = 1.0
    # the agent polls every 60 s and needs 3 bad polls 10 s apart: a poll cannot find
    # the freeze in time; only the heartbeat deadline (2 intervals) can
    settings = make_settings(sqlite_url, CHECK_INTERVAL=60.0, RETRY_DELAY=10.0, CHECK_TIMEOUT=2.0)
    async with AgentServer(settings) as server:
        example = ExampleService(
            "flask_service.py",
            agent_url=server.url,
            api_key=TEST_KEY,
            log_path=tmp_path / "flask.log",
            args=("--heartbeat-interval", str(interval), "--poll-interval", "60"),
        )
        client = api_client(server.url)
        try:
            await example.start()

            async def beating() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get("/api/services/payment-api")).json()
                ok = body.get("status") == "up" and body.get("last_heartbeat")
                return body if ok else None

            service = await wait_for(beating, 10)
            assert service["interval"] == 60.0
            await asyncio.sleep(interval * 1.5)  # a few heartbeats in: the deadline is armed
            example.freeze()
            frozen_at = time.monotonic()

            async def opened() -> dict[str, Any] | None:
                found = await list_incidents(client, service_id="payment-api")
                return found[0] if found else None

            # the deadline (2 intervals), then one probe of the health URL confirms the
            # silence before anything acts; a frozen process lets that probe time out
            budget = 2 * interval + settings.CHECK_TIMEOUT + 1.0
            incident = await wait_for(opened, budget + 2, interval=0.02)
            detected_after = time.monotonic() - frozen_at
            print(f"\nSIGSTOP -> incident after {detected_after:.2f}s (budget {budget:g}s)")
            assert detected_after <= budget
            assert incident["type"] == "unreachable"
            detail = (await client.get(f"/api/incidents/{incident['id']}")).json()
            first = detail["timeline"][0]
            assert first["kind"] == "detected"
            assert "missed heartbeat deadline" in first["message"]
            # thawed, the service gets the agent's restart and the incident resolves
            example.thaw()

            async def resolved() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"/api/incidents/{incident['id']}")).json()
                return body if body["status"] == "resolved" else None

            done = await wait_for(resolved, 20)
            # usually the restart webhook waits in the frozen process's socket and is
            # answered on thaw; on a loaded machine the resumed heartbeats may resolve the
            # incident first. Either way nothing else may have run.
            for action in done["actions"]:
                assert action["action"] == "restart"
                assert action["result"]["signed"] is True
                assert '"restarted": true' in action["result"]["detail"]
        finally:
            await example.stop()
            await client.aclose()
