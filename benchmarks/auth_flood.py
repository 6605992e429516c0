"""A flood of wrong API keys from one address, as in issue 10 (2,000 keys).

The agent runs in this process (``selfheal.testing.AgentServer``, SQLite) and
one client sends ``--count`` requests with a wrong key, ``--concurrency`` at a
time, as fast as it can; then the right key from the same address. Reported:
the rate reached, how many answers were 401 and 429, the right key's status,
and ``agent_auth_failures_total`` by reason.

    python benchmarks/auth_flood.py [--count 2000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from selfheal.config import Settings
from selfheal.testing import AgentServer

KEY = "bench-key-0123456789abcdef"


async def main(count: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as work:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=f"sqlite+aiosqlite:///{Path(work) / 'selfheal.db'}",
            SECRET_KEY=SecretStr("bench-secret-key-not-for-production"),
            API_KEYS=[SecretStr(KEY)],
            DATA_DIR=Path(work) / "data",
            LOG_LEVEL="WARNING",
        )
        async with (
            AgentServer(settings) as server,
            httpx.AsyncClient(base_url=server.url, timeout=30) as client,
        ):
            gate = asyncio.Semaphore(concurrency)

            async def one(n: int) -> int:
                async with gate:
                    wrong = {"X-API-Key": f"wrong-{n}"}
                    return (await client.get("/api/services", headers=wrong)).status_code

            started = time.perf_counter()
            codes = Counter(await asyncio.gather(*(one(n) for n in range(count))))
            elapsed = time.perf_counter() - started
            right = await client.get("/api/services", headers={"X-API-Key": KEY})
            metrics = await client.get("/metrics", headers={"X-API-Key": KEY})
        failures = {
            s.labels["reason"]: int(s.value)
            for family in text_string_to_metric_families(metrics.text)
            if family.name == "agent_auth_failures"
            for s in family.samples
            if s.name.endswith("_total")
        }
        print(f"{count} wrong keys in {elapsed:.2f} s ({count / elapsed:.0f}/s)")
        print(f"answers: {dict(sorted(codes.items()))}")
        print(f"right key from the same address: {right.status_code}")
        print(f"agent_auth_failures_total: {failures}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.concurrency))
