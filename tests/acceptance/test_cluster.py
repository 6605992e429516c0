"""Three real ``selfheal serve`` replicas on one PostgreSQL share one fleet.

One loopback target server answers every service's health path and records
when each path was hit, so the test sees exactly how often each service is
probed, whoever probes it.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections import defaultdict
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiohttp import web

from selfheal.testing import free_port
from tests.conftest import TEST_KEY, _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import AgentProcess, wait_for

SERVICES = 150
WINDOW = 10.0  # seconds over which the probe rate is measured


class HitCounter:
    """A loopback server that answers 200 on every path and remembers each hit."""

    def __init__(self) -> None:
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits[request.path.lstrip("/")].append(time.monotonic())
        return web.json_response({"status": "ok"})

    async def start(self) -> HitCounter:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._hit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def count(self, path: str, start: float, end: float) -> int:
        return sum(1 for at in self.hits.get(path, ()) if start <= at < end)

    def max_gap(self, path: str, start: float, end: float) -> float:
        """The longest stretch in [start, end] without a hit on ``path``."""
        times = [start, *(at for at in self.hits.get(path, ()) if start < at < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


def _config(tmp_path: Path, target: str) -> Path:
    services = [
        {"id": f"s{i:03d}", "health_url": f"{target}/s{i:03d}", "interval": "1s", "timeout": "0.8s"}
        for i in range(SERVICES)
    ]
    path = tmp_path / "selfheal.yaml"
    path.write_text(yaml.safe_dump({"services": services}))
    return path


def _replicas(tmp_path: Path, config: Path, url: str, n: int) -> list[AgentProcess]:
    env = {
        "DATABASE_URL": url,
        "API_KEYS": TEST_KEY,
        "SECRET_KEY": "cluster-test-secret-key-0123456789",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    return [
        AgentProcess(
            config=str(config), env=env, port=free_port(), log_path=tmp_path / f"replica{i}.log"
        )
        for i in range(n)
    ]


async def _commits(url: str) -> int:
    """Transactions committed in the test's database so far (statistics lag ~0.5 s)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        value: int = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return value
    finally:
        await conn.close()


def _rates(target: HitCounter, start: float, end: float) -> list[float]:
    """Probes per service per interval (1 s) over [start, end)."""
    return [target.count(f"s{i:03d}", start, end) / (end - start) for i in range(SERVICES)]


@pytest.mark.timeout(180)
async def test_three_replicas_share_the_fleet(tmp_path: Path) -> None:
    name, url = await _create_postgres_database()
    target = await HitCounter().start()
    replicas = _replicas(tmp_path, _config(tmp_path, target.url), url, 3)
    try:
        # started together: migrations and start-up writes must not race
        await asyncio.gather(*(r.start(timeout=60) for r in replicas))
        await asyncio.sleep(3)  # views settle (each replica sees the others within 0.4 s)

        commits = await _commits(url)
        t0 = time.monotonic()
        await asyncio.sleep(WINDOW)
        rates = _rates(target, t0, t0 + WINDOW)
        per_second = (await _commits(url) - commits) / WINDOW
        print(f"\ndatabase transactions/s, 3 replicas, 150 services: {per_second:.1f}")
        mean = statistics.fmean(rates)
        print(f"\nprobes/service/interval: mean {mean:.3f} min {min(rates)} max {max(rates)}")
        assert abs(mean - 1.0) <= 0.15, rates
        assert max(rates) <= 1.3, rates  # nobody probed twice per interval

        # SIGKILL one: its services are taken over within the lease plus one beat
        killed_at = time.monotonic()
        replicas[0].kill()
        await asyncio.wait_for(replicas[0].proc.wait(), 5)  # type: ignore[union-attr]
        await asyncio.sleep(8)
        end = time.monotonic()
        gaps = [target.max_gap(f"s{i:03d}", killed_at - 1.5, end) for i in range(SERVICES)]
        print(f"max gap after SIGKILL: {max(gaps):.2f}s")
        assert max(gaps) <= 5.0
        after = _rates(target, end - 4, end)
        print(f"after takeover: mean {statistics.fmean(after):.3f}")
        assert abs(statistics.fmean(after) - 1.0) <= 0.15

        a, b = replicas[1], replicas[2]
        async with api_client(a.url) as via_a, api_client(b.url) as via_b:
            # registered through A: probed by whichever replica owns it
            body = {"service_id": "fresh", "health_url": f"{target.url}/fresh", "interval": 1}
            sent = time.monotonic()
            assert (await via_a.post("/api/services/register", json=body)).status_code == 201

            async def probed() -> bool:
                return bool(target.hits.get("fresh"))

            await wait_for(probed, 5, interval=0.02)
            print(f"registered through A, first probe after {target.hits['fresh'][0] - sent:.2f}s")

            # a change through A reaches B's memory (B's API answers from it)
            waits = []
            for i in range(10):
                sid = f"s{i:03d}"
                sent = time.monotonic()
                patched = await via_a.patch(f"/api/services/{sid}", json={"timeout": 0.7})
                assert patched.status_code == 200, patched.text

                async def seen_by_b(sid: str = sid) -> bool:
                    return (await via_b.get(f"/api/services/{sid}")).json()["timeout"] == 0.7

                await wait_for(seen_by_b, 5, interval=0.01)
                waits.append(time.monotonic() - sent)
            median = statistics.median(waits)
            print(f"PATCH through A seen by B: max {max(waits):.3f}s, median {median:.3f}s")
            assert max(waits) <= 1.0

            # a new health URL through A is probed, by whichever owns it, at the next interval
            moved: dict[str, float] = {}
            for i in range(10, 20):
                sid = f"s{i:03d}"
                body = {"health_url": f"{target.url}/moved-{sid}"}
                assert (await via_a.patch(f"/api/services/{sid}", json=body)).status_code == 200
                moved[sid] = time.monotonic()

            async def all_moved() -> bool:
                return all(target.hits.get(f"moved-{sid}") for sid in moved)

            await wait_for(all_moved, 5, interval=0.02)
            firsts = [target.hits[f"moved-{sid}"][0] - at for sid, at in moved.items()]
            print(f"new health URL first probed after: max {max(firsts):.2f}s")
            assert max(firsts) <= 2.5  # propagation (< 1 s) + at most one interval

            # deleted through A: nobody probes it any more
            assert (await via_a.delete("/api/services/s149")).status_code == 204
            await asyncio.sleep(2)
            stopped = time.monotonic()
            await asyncio.sleep(2)
            assert target.count("s149", stopped, time.monotonic()) == 0
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        await target.stop()
        await _drop_postgres_database(name)


async def test_second_serve_on_one_sqlite_file_refuses(tmp_path: Path) -> None:
    config = tmp_path / "selfheal.yaml"
    config.write_text(yaml.safe_dump({"services": []}))
    url = f"sqlite+aiosqlite:///{tmp_path / 'selfheal.db'}"
    first, second = _replicas(tmp_path, config, url, 2)
    await first.start()
    try:
        with pytest.raises(AssertionError) as refused:
            await second.start()
        assert "SQLite serves one process only" in str(refused.value)
        assert "PostgreSQL" in str(refused.value)
        assert second.proc is not None
        assert second.proc.returncode == 2
        # SIGKILL leaves no stale lock: the next start works
        first.kill()
        await asyncio.wait_for(first.proc.wait(), 5)  # type: ignore[union-attr]
        await second.start()
        await second.stop()
    finally:
        await first.stop()
        await second.stop()
