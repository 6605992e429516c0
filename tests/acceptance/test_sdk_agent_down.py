"""The agent goes away for 60 s: a service using the SDK keeps serving, stays bounded in
memory, raises nothing, and reconnects when the agent is back."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from selfheal.testing import free_port
from tests.conftest import TEST_KEY, api_client
from tests.helpers import AgentProcess, wait_for
from tests.sdk_examples import ExampleService

DOWN_SECONDS = 60.0
QUEUE_SIZE = 200


@pytest.mark.slow
async def test_service_survives_the_agent_being_down(tmp_path: Path, sqlite_url: str) -> None:
    config = tmp_path / "selfheal.yaml"
    config.write_text("services: []\n")
    agent = AgentProcess(
        config=str(config),
        env={
            "DATABASE_URL": sqlite_url,
            "API_KEYS": TEST_KEY,
            "SECRET_KEY": "agent-down-test-secret-key-0123",
            "DATA_DIR": str(tmp_path / "data"),
            "CHECK_INTERVAL": "2",
            "LOG_FORMAT": "json",
        },
        port=free_port(),
        log_path=tmp_path / "agent.log",
    )
    await agent.start()
    example = ExampleService(
        "flask_service.py",
        agent_url=agent.url,
        api_key=TEST_KEY,
        log_path=tmp_path / "flask.log",
        args=("--heartbeat-interval", "0.5", "--queue-size", str(QUEUE_SIZE)),
    )
    client = api_client(agent.url)
    try:
        await example.start()

        async def up() -> dict[str, Any] | None:
            body: dict[str, Any] = (await client.get("/api/services/payment-api")).json()
            return body if body.get("status") == "up" and body.get("last_heartbeat") else None

        await wait_for(up, 10)
        await agent.stop()
        process = psutil.Process(example.pid)
        answers: dict[int, int] = {}
        rss: list[tuple[float, int]] = []
        async with httpx.AsyncClient(base_url=example.url, timeout=5) as shop:
            # half the payments fail: each is an unhandled exception the blueprint reports,
            # so error events pile up while nobody can take them
            await shop.post("/chaos", json={"error_rate": 0.5})
            started = time.monotonic()
            next_sample = started
            while (now := time.monotonic()) - started < DOWN_SECONDS:
                for path in ("/pay", "/pay", "/pay", "/pay", "/health"):
                    response = await shop.get(path)
                    answers[response.status_code] = answers.get(response.status_code, 0) + 1
                    if path == "/health":
                        assert response.status_code == 200
                if now >= next_sample:
                    rss.append((now - started, process.memory_info().rss))
                    next_sample += 1.0
                await asyncio.sleep(0.02)
            status = await example.status()
        assert example.proc is not None
        assert example.proc.returncode is None  # still running
        assert set(answers) <= {200, 500}  # 500: the injected payment failures, nothing else
        assert status["agent_reachable"] is False
        assert status["queued_events"] <= QUEUE_SIZE
        assert status["dropped_events"] > 0  # the queue was full: the oldest went
        warm = [r for t, r in rss if t >= 10.0]
        growth = max(warm) - warm[0]
        print(
            f"\nagent down {DOWN_SECONDS:.0f}s: {sum(answers.values())} requests {answers}; "
            f"RSS {rss[0][1] / 2**20:.1f} MB at start, {warm[0] / 2**20:.1f} MB at 10 s, "
            f"max {max(r for _t, r in rss) / 2**20:.1f} MB, end {rss[-1][1] / 2**20:.1f} MB; "
            f"queued {status['queued_events']}, dropped {status['dropped_events']}"
        )
        assert growth < 8 * 2**20, f"RSS grew {growth / 2**20:.1f} MB after warm-up"

        # the agent comes back on the same port and database: heartbeats resume, the
        # queued errors are delivered
        down_until = time.time()
        await agent.start()

        async def reconnected() -> dict[str, Any] | None:
            state = await example.status()
            body: dict[str, Any] = (await client.get("/api/services/payment-api")).json()
            beat = body.get("last_heartbeat") or 0
            ok = state["agent_reachable"] and beat > down_until and state["queued_events"] == 0
            return state if ok else None

        await wait_for(reconnected, 15)
        # nothing from the SDK ever surfaced in the service: the only tracebacks in its
        # output are the injected payment failures
        output = example.log()
        full = example.log_path.read_text(errors="replace")
        assert "self_healing_sdk" not in "".join(re.findall(r'File "[^"]+"', full)), output
        assert full.count("Traceback (most recent call last)") == full.count(
            "RuntimeError: payment processor rejected the request"
        )
    finally:
        await example.stop()
        await agent.stop()
        await client.aclose()
