"""The API under load with a long history: 1,000 services, 100,000 incidents.

The agent runs as its own process (``selfheal serve``) probing ``--services``
loopback services every 10 s; the database (SQLite file or a fresh PostgreSQL
database) holds ``--incidents`` incidents (200 of them open) and 3,000 action
runs, written with bulk INSERTs. Then, for each route:

- closed loop: ``--clients`` clients (16) send requests back to back for
  ``--duration`` seconds: requests/s, p50, p99;
- open loop: requests at a fixed ``--rate`` (500/s) for ``--open-duration``
  seconds, latency counted from when each request was due (so a stall is not
  hidden by sending less): achieved rate, p50, p99;
- during both: ``/health`` p99 (one request every 50 ms on its own
  connection), the p99 lateness of probes (from the probes' arrival times at
  the services: each service is probed on a fixed schedule, so an arrival
  later than its slot is lateness; a failed probe moves the schedule by the
  retry delay, which this estimate counts as lateness too), the agent's own
  ``agent_probe_delay_seconds`` histogram over the phase (exact, as a bucket
  bound; agents before issue 16 lack it), and the agent's RSS after the run.

``--agent-src`` runs another checkout's agent (its ``src/``) against the same
seed, for before/after figures. The load generator and the agent share the
machine: pin them (``taskset``) where cores are free, and say how it was run.

    python benchmarks/api_load.py [--database sqlite|postgresql] [--services 1000]
        [--incidents 100000] [--duration 10] [--open-duration 5] [--clients 16]
        [--rate 500] [--routes status,incidents,...] [--agent-src PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from selfheal.storage.db import Database  # noqa: E402
from selfheal.testing import seed_history  # noqa: E402

KEY = "bench-key-0123456789"
INTERVAL = 10.0
PG_ADMIN = os.environ.get("SELFHEAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
ROUTES = {
    "status": "/status",
    "incidents": "/api/incidents?limit=50",
    "incident": "/api/incidents/{id}",
    "services": "/api/services",
    "api_metrics": "/api/metrics",
    "metrics": "/metrics",
    "fleet": "/api/fleet",
}


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the monitored services: one small server in its own process -------------------------


def _target(port: int, ready: Any) -> None:
    from aiohttp import web

    arrivals: dict[str, list[float]] = {}

    async def health(request: web.Request) -> web.Response:
        arrivals.setdefault(request.match_info["n"], []).append(time.monotonic())
        return web.json_response({"status": "ok", "cpu": 10.0, "memory": 40.0})

    async def dump(_request: web.Request) -> web.Response:
        return web.json_response(arrivals)

    async def reset(_request: web.Request) -> web.Response:
        arrivals.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/h/{n}", health)
    app.router.add_get("/_arrivals", dump)
    app.router.add_delete("/_arrivals", reset)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def lateness(arrivals: dict[str, list[float]], start: float, end: float) -> list[float]:
    """Per service, arrival minus its slot; the earliest arrival of each service
    against its own schedule (first + k x interval) counts as on time."""
    late: list[float] = []
    for times in arrivals.values():
        if len(times) < 2:
            continue
        first = times[0]
        offsets = [t - (first + round((t - first) / INTERVAL) * INTERVAL) for t in times]
        base = min(offsets)
        late += [o - base for t, o in zip(times, offsets, strict=True) if start <= t < end]
    return late


# -- the agent ----------------------------------------------------------------------------


class AgentProcess:
    """``selfheal serve`` in a child process."""

    def __init__(self, work: Path, env: dict[str, str], port: int) -> None:
        self.work, self.env, self.port = work, env, port
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{port}"

    async def start(self, session: aiohttp.ClientSession, services: int) -> None:
        """Start it and wait until every service is loaded."""
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "selfheal.cli.main", "serve", "--config", str(self.work / "selfheal.yaml")),
            *("--port", str(self.port)),
            env=self.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=open(self.work / "agent.log", "ab"),  # noqa: SIM115 - handed to the child
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{self.url}/status") as response:
                    if response.status == 200:
                        body = await response.json()
                        if sum(body["services"].values()) >= services:
                            return
            except aiohttp.ClientError:
                pass
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.5)
        raise SystemExit(f"the agent did not start; see {self.work / 'agent.log'}")

    async def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            await self.proc.wait()

    def rss_mb(self) -> float:
        """Resident memory of the agent process."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


# -- load ---------------------------------------------------------------------------------


def _path(route: str, incidents: int) -> str:
    return ROUTES[route].replace("{id}", str(random.randint(1, incidents)))


async def _health_watch(session: aiohttp.ClientSession, url: str, out: list[float]) -> None:
    while True:
        t0 = time.perf_counter()
        try:
            async with session.get(f"{url}/health") as response:
                await response.read()
        except aiohttp.ClientError:
            pass
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.05)


async def closed_loop(
    session: aiohttp.ClientSession, url: str, route: str, args: argparse.Namespace
) -> tuple[list[float], int]:
    """``clients`` workers back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    end = time.perf_counter() + args.duration

    async def worker() -> None:
        nonlocal errors
        while (t0 := time.perf_counter()) < end:
            try:
                async with session.get(url + _path(route, args.incidents)) as response:
                    await response.read()
                    errors += response.status >= 400
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(args.clients)))
    return latencies, errors


async def open_loop(
    session: aiohttp.ClientSession, url: str, route: str, rate: float, args: argparse.Namespace
) -> tuple[list[float], int]:
    """Requests due every 1/rate s, whether or not earlier ones have answered."""
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter()
    count = int(rate * args.open_duration)

    async def one(due: float) -> None:
        nonlocal errors
        try:
            async with session.get(url + _path(route, args.incidents)) as response:
                await response.read()
                errors += response.status >= 400
        except aiohttp.ClientError:
            errors += 1
        latencies.append(time.perf_counter() - due)

    tasks = []
    for i in range(count):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return latencies, errors


# -- setup --------------------------------------------------------------------------------


async def _database(args: argparse.Namespace, work: Path) -> tuple[str, str | None]:
    if args.database == "sqlite":
        return f"sqlite+aiosqlite:///{work / 'selfheal.db'}", None
    import asyncpg

    name = "selfheal_bench_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(PG_ADMIN)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def _seed(url: str, services: list[str], incidents: int) -> float:
    t0 = time.perf_counter()
    db = Database(url)  # the schema is the agent's own (it migrated at first start)
    try:
        await seed_history(db, service_ids=services, incidents=incidents, actions=3000)
        if not db.is_sqlite:
            async with db.engine.begin() as conn:
                await conn.exec_driver_sql("ANALYZE")  # what autovacuum soon does
    finally:
        await db.close()
    return time.perf_counter() - t0


def _config(work: Path, services: list[str], target_port: int) -> None:
    lines = ["services:"]
    for i, sid in enumerate(services):
        lines += [
            f"  - id: {sid}",
            f"    health_url: http://127.0.0.1:{target_port}/h/{i}",
            "    interval: 10s",
            "    timeout: 2s",
        ]
    (work / "selfheal.yaml").write_text("\n".join(lines) + "\n")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="selfheal-api-load-"))
    target_port, agent_port = free_port(), free_port()
    spawn = multiprocessing.get_context("spawn")  # no fork of a running event loop
    ready = spawn.Event()
    target = spawn.Process(target=_target, args=(target_port, ready), daemon=True)
    target.start()
    ready.wait(10)
    services = [f"svc-{i:05d}" for i in range(args.services)]
    _config(work, services, target_port)
    url, pg_name = await _database(args, work)
    src = Path(args.agent_src).resolve() if args.agent_src else ROOT / "src"
    env = os.environ | {
        "DATABASE_URL": url,
        "SECRET_KEY": "benchmark-secret-key-not-for-production",
        "API_KEYS": KEY,
        "DATA_DIR": str(work / "data"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(src),
    }
    agent = AgentProcess(work, env, agent_port)
    connector = aiohttp.TCPConnector(limit=256, limit_per_host=0)
    headers = {"X-API-Key": KEY}
    timeout = aiohttp.ClientTimeout(total=60)
    report: dict[str, Any] = {"database": args.database, "agent_src": str(src), "routes": {}}
    async with (
        aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as session,
        aiohttp.ClientSession() as side,
    ):
        try:
            await agent.start(session, args.services)  # migrates and registers the fleet
            await agent.stop()
            report["seed_seconds"] = round(await _seed(url, services, args.incidents), 1)
            await agent.start(session, args.services)
            async with side.delete(f"http://127.0.0.1:{target_port}/_arrivals"):
                pass  # lateness counts this run's probes only
            await asyncio.sleep(args.warmup)
            report["rss_mb_idle"] = round(agent.rss_mb(), 1)
            for route in args.routes.split(","):
                report["routes"][route] = await _route(session, side, agent, route, args)
                print(json.dumps({route: report["routes"][route]}), file=sys.stderr)
            async with side.get(f"http://127.0.0.1:{target_port}/_arrivals") as response:
                arrivals = await response.json()
            for figures in report["routes"].values():
                window = figures.pop("_window")
                late = lateness(arrivals, *window)
                figures["probe_lateness_p99_ms"] = round(percentile(late, 0.99) * 1000, 1)
        finally:
            await agent.stop()
            target.terminate()
            if pg_name is not None:
                import asyncpg

                conn = await asyncpg.connect(PG_ADMIN)
                await conn.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
                await conn.close()
    return report


async def _delay_buckets(session: aiohttp.ClientSession, url: str) -> dict[float, float]:
    """The agent's cumulative probe-delay histogram, ``{upper bound: count}`` (empty on
    agents older than ``agent_probe_delay_seconds``)."""
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("agent_probe_delay_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


def delay_p99(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The bucket bound under which 99 % of the probes of a phase started."""
    counts = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    total = counts.get(float("inf"), 0.0)
    if not total:
        return None
    return next(b for b in sorted(counts) if counts[b] >= 0.99 * total)


async def _route(
    session: aiohttp.ClientSession,
    side: aiohttp.ClientSession,
    agent: AgentProcess,
    route: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    health: list[float] = []
    delays = await _delay_buckets(side, agent.url)
    watch = asyncio.create_task(_health_watch(side, agent.url, health))
    start = time.monotonic()
    t0 = time.perf_counter()
    closed, closed_errors = await closed_loop(session, agent.url, route, args)
    elapsed = time.perf_counter() - t0
    # past its capacity a route's open-loop queue only grows; load it to 80 % instead
    rate = min(args.rate, 0.8 * len(closed) / elapsed)
    opened, open_errors = await open_loop(session, agent.url, route, rate, args)
    end = time.monotonic()
    watch.cancel()
    p99 = delay_p99(delays, await _delay_buckets(side, agent.url))

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 1)

    return {
        "closed_rps": round(len(closed) / elapsed, 1),
        "closed_p50_ms": ms(closed, 0.5),
        "closed_p99_ms": ms(closed, 0.99),
        "open_rate": round(rate, 1),
        "open_p50_ms": ms(opened, 0.5),
        "open_p99_ms": ms(opened, 0.99),
        "errors": closed_errors + open_errors,
        "health_p99_ms": ms(health, 0.99),
        "rss_mb": round(agent.rss_mb(), 1),
        "probe_delay_p99_ms": None if p99 is None else f"<= {p99 * 1000:g}",
        "_window": (start, end),
    }


def render(report: dict[str, Any]) -> str:
    """A markdown table of the figures."""
    lines = [
        f"database {report['database']}, agent {report['agent_src']}, "
        f"idle RSS {report.get('rss_mb_idle')} MB, seeded in {report.get('seed_seconds')} s",
        "",
        "| route | req/s (16 clients) | p50 | p99 | open loop req/s | p50 | p99 "
        "| /health p99 | probe delay p99 (agent) | probe lateness p99 (arrivals) | RSS MB "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for route, f in report["routes"].items():
        lines.append(
            f"| {ROUTES[route]} | {f['closed_rps']} | {f['closed_p50_ms']} ms "
            f"| {f['closed_p99_ms']} ms | {f['open_rate']} | {f['open_p50_ms']} ms "
            f"| {f['open_p99_ms']} ms "
            f"| {f['health_p99_ms']} ms | {f['probe_delay_p99_ms']} ms "
            f"| {f['probe_lateness_p99_ms']} ms | {f['rss_mb']} "
            f"| {f['errors']} |"
        )
    return "\n".join(lines)


def cli() -> None:
    """Parse arguments, run, print the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--open-duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--warmup", type=float, default=12.0)
    parser.add_argument("--routes", default=",".join(ROUTES))
    parser.add_argument("--agent-src", help="another checkout's src/ (before/after)")
    args = parser.parse_args()
    unknown = set(args.routes.split(",")) - set(ROUTES)
    if unknown:
        parser.error(f"unknown routes {sorted(unknown)}; choose from {sorted(ROUTES)}")
    report = asyncio.run(main(args))
    print(render(report))
    print(json.dumps(report))


if __name__ == "__main__":
    cli()
