"""The agent killed with SIGKILL mid-action: nothing is lost, nothing runs twice."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from selfheal.testing import FakeService, free_port
from tests.conftest import TEST_KEY, api_client
from tests.helpers import AgentProcess, list_incidents, wait_for


async def test_sigkill_while_action_in_flight(tmp_path: Path, database_url: str) -> None:
    async with FakeService(service_id="billing", action_delay=3.0) as service:
        config = tmp_path / "selfheal.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "services": [
                        {
                            "id": "billing",
                            "health_url": service.health_url,
                            "webhook_url": service.webhook_url,
                            "secret": "${BILLING_SECRET}",
                            "interval": "1s",
                            "timeout": "0.8s",
                            "retry_delay": "0.5s",
                            "cooldown": 0,
                        }
                    ]
                }
            )
        )
        env = {
            "DATABASE_URL": database_url,
            "API_KEYS": TEST_KEY,
            "SECRET_KEY": "crash-test-secret-key-0123456789",
            "DATA_DIR": str(tmp_path / "data"),
            "BILLING_SECRET": service.secret,
            "VERIFY_INTERVAL": "0.3",
            "VERIFY_TIMEOUT": "8",
            "LOG_FORMAT": "json",
        }
        agent = AgentProcess(
            config=str(config), env=env, port=free_port(), log_path=tmp_path / "agent.log"
        )
        await agent.start()
        try:
            client = api_client(agent.url)
            service.break_as("http_500")

            async def action_in_flight() -> bool:
                return len(service.accepted_calls) == 1

            await wait_for(action_in_flight, 10, interval=0.02)
            agent.kill()
            await asyncio.wait_for(agent.proc.wait(), 5)  # type: ignore[union-attr]
            opened = service.accepted_calls[0].body
            assert opened is not None
            incident_id = opened["incident_id"]

            # the service finishes the fix it was asked for while the agent is dead
            await asyncio.sleep(3.5)
            await agent.start()

            async def finished() -> dict[str, Any] | None:
                body: dict[str, Any] = (await client.get(f"/api/incidents/{incident_id}")).json()
                return body if body["status"] in ("resolved", "escalated") else None

            detail = await wait_for(finished, 20)
            assert detail["status"] == "resolved"
            # no incident lost: the same one, and only one
            assert [i["id"] for i in await list_incidents(client)] == [incident_id]
            # the interrupted action was not run a second time
            assert len(service.accepted_calls) == 1
            assert [a["status"] for a in detail["actions"]] == ["interrupted"]
            assert detail["actions"][0]["outcome"] == "recovered"
            kinds = [step["kind"] for step in detail["timeline"]]
            assert "action_interrupted" in kinds
            await client.aclose()
        finally:
            await agent.stop()
