"""Cluster at scale: one replica, then three on one PostgreSQL, then one SIGKILLed.

N loopback services (default 30,000) probed every ``--interval`` s (10) by real
``selfheal serve`` processes sharing a fresh PostgreSQL database
(``bench_cluster_<pid>``, created on the ``--database-url`` server and dropped
afterwards). A small keep-alive HTTP server in its own process (1,000 service
paths per port) answers every probe and records when each service was hit,
whoever probed it; its CPU is not counted.

- phase A: one replica, ``--duration`` s after a warm-up: probes/s, CPU-seconds
  per 1,000 probes (utime+stime from /proc/<pid>/stat), probe delay p99 (the
  agent's ``agent_probe_delay_seconds`` histogram, as a bucket bound), and the
  database's transactions/s;
- phase B: two more replicas join; the same window: CPU per 1,000 probes summed
  over the replicas and its ratio to phase A, probes per service per interval
  (mean, p5, p95; 1.0 when each service is probed once per interval), and the
  database load (``pg_stat_database`` transactions and rows, and
  ``pg_stat_statements`` calls when that extension is loaded);
- failover: one replica is SIGKILLed; for the services it owned (rendezvous
  owner over the live ``cluster_members`` rows) the gap between the last probe
  before the kill and the first after it (max, p99) and the time until all of
  them were probed again.

    python benchmarks/cluster_scale.py [--services 30000] [--interval 10] [--duration 60]
        [--database-url postgresql://postgres@127.0.0.1:5432/test] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from api_load import delay_p99, percentile  # noqa: E402
from probe_throughput import PER_PORT, RESPONSE  # noqa: E402
from tests.helpers import AgentProcess  # noqa: E402

from selfheal.cluster.ownership import owner  # noqa: E402
from selfheal.testing import free_port  # noqa: E402
from selfheal.types import ServiceKey  # noqa: E402

KEY = "bench-key-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


# -- the target: every service's health path, each hit recorded ---------------------------


def _target(ports: list[int], dump_to: str, ready: Any) -> None:
    """Answer ``/s/<n>`` with a fixed 200; ``/_dump`` writes every hit time to ``dump_to``."""
    hits: dict[int, list[float]] = {}

    class Target(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                path = self.buffer.split(b" ", 2)[1]
                self.buffer = self.buffer[end + 4 :]
                if path.startswith(b"/s/"):
                    hits.setdefault(int(path[3:]), []).append(time.monotonic())
                elif path == b"/_dump":
                    Path(dump_to).write_text(json.dumps(hits))
                self.transport.write(RESPONSE)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for port in ports:
            await loop.create_server(Target, "127.0.0.1", port, backlog=4096, reuse_address=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _ports(services: int) -> list[int]:
    """Free loopback ports, one per 1,000 services."""
    return [free_port() for _ in range((services + PER_PORT - 1) // PER_PORT)]


async def _dump(port: int, path: Path) -> dict[int, list[float]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/_dump") as response,
    ):
        await response.read()
    return {int(k): v for k, v in json.loads(path.read_text()).items()}


def _count(times: list[float], start: float, end: float) -> int:
    return sum(1 for t in times if start <= t < end)


# -- replicas ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat);
    NaN once it has exited."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    with contextlib.suppress(FileNotFoundError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _exited(replicas: list[AgentProcess]) -> dict[str, str]:
    """Replicas that exited on their own, with the last line each logged."""
    return {
        str(i): r.log().strip().splitlines()[-1][:300]
        for i, r in enumerate(replicas)
        if r.proc is not None and r.proc.returncode is not None
    }


def _pid(replica: AgentProcess) -> int:
    assert replica.proc is not None
    return replica.proc.pid


async def _start(session: aiohttp.ClientSession, replica: AgentProcess, services: int) -> None:
    """Start a replica and wait until its API lists the whole fleet.

    Not ``AgentProcess.start``'s wait alone: it gives ``/health`` 0.5 s, and a replica
    saturated by its probes (one replica at 30,000) answers later than that.
    """
    try:
        await replica.start(timeout=5)
    except AssertionError:
        if replica.proc is None or replica.proc.returncode is not None:
            raise
    await _loaded(session, replica, services)


async def _loaded(session: aiohttp.ClientSession, replica: AgentProcess, services: int) -> None:
    """Wait until the replica's API lists the whole fleet."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{replica.url}/status") as response:
                if response.status == 200:
                    body = await response.json()
                    if sum(body["services"].values()) >= services:
                        return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(1)
    raise SystemExit(f"replica {replica.url} did not load {services} services: {replica.log()}")


async def _delays(session: aiohttp.ClientSession, replica: AgentProcess) -> dict[float, float]:
    """The replica's cumulative ``agent_probe_delay_seconds`` buckets (none if it is gone)."""
    try:
        async with session.get(f"{replica.url}/metrics") as response:
            text = await response.text()
    except aiohttp.ClientError:
        return {}
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith("agent_probe_delay_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[float(bound)] = float(line.rsplit(" ", 1)[1])
    return buckets


# -- the database --------------------------------------------------------------------------


async def _db_stats(conn: asyncpg.Connection, name: str) -> dict[str, float]:
    row = await conn.fetchrow(
        "SELECT xact_commit + xact_rollback AS xacts, tup_inserted, tup_updated, tup_deleted,"
        " tup_returned + tup_fetched AS tup_read FROM pg_stat_database WHERE datname = $1",
        name,
    )
    stats = {k: float(v) for k, v in dict(row).items()}
    for table in await conn.fetch(
        "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS w FROM pg_stat_user_tables"
    ):
        stats[f"writes.{table['relname']}"] = float(table["w"])
    with contextlib.suppress(asyncpg.PostgresError):  # only when the server preloads it
        stats["statements"] = float(
            await conn.fetchval(
                "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
                name,
            )
        )
    return stats


def _per_second(
    before: dict[str, float], after: dict[str, float], seconds: float
) -> dict[str, Any]:
    """Rates over the window; row writes per table, the busiest five only."""
    rates = {k: round((after[k] - before.get(k, 0.0)) / seconds, 1) for k in after}
    tables = sorted(
        ((k.removeprefix("writes."), v) for k, v in rates.items() if k.startswith("writes.")),
        key=lambda kv: -kv[1],
    )
    out: dict[str, Any] = {f"{k}_per_s": v for k, v in rates.items() if "." not in k}
    out["row_writes_per_s_by_table"] = dict(tables[:5])
    return out


async def _seed(url: str, n: int, ports: list[int], interval: float) -> None:
    """Migrate and insert the fleet in bulk, as API-registered services.

    Not through the config file: ``serve`` registers config services one
    transaction (and one NOTIFY) at a time, about 45 a second here at 30,000.
    """
    from sqlalchemy import insert

    from selfheal.storage.db import Database
    from selfheal.storage.repositories.tenants import ensure_tenant
    from selfheal.storage.tables import Service

    db = Database(url)
    now = datetime.now(UTC)
    try:
        await db.migrate()
        async with db.session() as session:
            await ensure_tenant(session=session, tenant_id="default")
        rows = [
            {
                "tenant_id": "default",
                "service_id": f"svc-{i:05d}",
                "name": f"svc-{i:05d}",
                "health_url": f"http://127.0.0.1:{ports[i // PER_PORT]}/s/{i}",
                "settings": {"interval": interval, "timeout": 2.0},
                "source": "api",
                # as after a first run: the first probe of a service whose stored status is
                # "unknown" writes a status change, one transaction per service (a backlog of
                # minutes at 30,000), which is start-up, not the steady state measured here
                "status": "up",
                "status_changed_at": now,
            }
            for i in range(n)
        ]
        for chunk in range(0, n, 5000):
            async with db.session() as session:
                await session.execute(insert(Service), rows[chunk : chunk + 5000])
    finally:
        await db.close()


# -- phases --------------------------------------------------------------------------------


class Window:
    """CPU, probe delay and database counters of a set of replicas over one window."""

    def __init__(self, replicas: list[AgentProcess], conn: asyncpg.Connection, name: str) -> None:
        self.replicas, self.conn, self.name = replicas, conn, name

    async def measure(self, session: aiohttp.ClientSession, seconds: float) -> dict[str, Any]:
        pids = [_pid(r) for r in self.replicas]
        delays0 = [await _delays(session, r) for r in self.replicas]
        db0 = await _db_stats(self.conn, self.name)
        cpu0 = [cpu_seconds(p) for p in pids]
        self.start = time.monotonic()
        await asyncio.sleep(seconds)
        self.end = time.monotonic()
        cpu = [cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
        await asyncio.sleep(1)  # the statistics collector lags by up to 0.5 s
        db = _per_second(db0, await _db_stats(self.conn, self.name), self.end - self.start)
        p99s = [
            delay_p99(d, await _delays(session, r))
            for d, r in zip(delays0, self.replicas, strict=True)
        ]
        return {
            "replicas": len(pids),
            "cpu_seconds": [round(c, 2) for c in cpu],
            "rss_mb": [round(rss_mb(p), 1) for p in pids],
            "probe_delay_p99_ms": [None if p is None else round(p * 1000, 1) for p in p99s],
            "database": db,
        }


def _probe_figures(
    result: dict[str, Any], hits: dict[int, list[float]], window: Window, n: int, interval: float
) -> None:
    seconds = window.end - window.start
    counts = [_count(hits.get(i, []), window.start, window.end) for i in range(n)]
    total = sum(counts)
    rates = [c * interval / seconds for c in counts]
    result["seconds"] = round(seconds, 1)
    result["probes"] = total
    result["probes_per_second"] = round(total / seconds, 1)
    cpu = sum(c for c in result["cpu_seconds"] if c == c)  # a replica that died: NaN
    result["cpu_seconds_per_1000_probes"] = round(1000 * cpu / max(total, 1), 4)
    result["per_service_per_interval"] = {
        "mean": round(statistics.fmean(rates), 3),
        "p5": round(percentile(rates, 0.05), 3),
        "p95": round(percentile(rates, 0.95), 3),
        "never": sum(1 for c in counts if c == 0),
    }


async def _members(conn: asyncpg.Connection) -> dict[int, str]:
    """Live members by pid (the benchmark runs every replica on this host)."""
    rows = await conn.fetch("SELECT id, pid FROM cluster_members")
    return {row["pid"]: row["id"] for row in rows}


def _failover(
    hits: dict[int, list[float]], owned: list[int], killed_at: float, end: float
) -> dict[str, Any]:
    gaps: list[float] = []
    back: list[float] = []
    missing = 0
    for i in owned:
        times = hits.get(i, [])
        before = [t for t in times if t < killed_at]
        after = [t for t in times if killed_at <= t < end]
        if not after:
            missing += 1
            continue
        back.append(after[0] - killed_at)
        if before:
            gaps.append(after[0] - before[-1])
    return {
        "services_owned": len(owned),
        "never_probed_again": missing,
        "gap_max_s": round(max(gaps, default=float("nan")), 2),
        "gap_p99_s": round(percentile(gaps, 0.99), 2),
        "all_probed_again_after_s": round(max(back, default=float("nan")), 2),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, interval = args.services, args.interval
    work = Path(tempfile.mkdtemp(prefix="selfheal-cluster-scale-"))
    ports = _ports(n)
    ready = multiprocessing.get_context("spawn").Event()
    target = multiprocessing.get_context("spawn").Process(
        target=_target, args=(ports, str(work / "hits.json"), ready), daemon=True
    )
    target.start()
    if not ready.wait(30):
        raise SystemExit("the target server did not start")
    (work / "selfheal.yaml").write_text("services: []\n")  # the fleet is seeded (below)

    name = f"bench_cluster_{os.getpid()}"
    admin = await asyncpg.connect(args.database_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    server = args.database_url.rsplit("/", 1)[0]
    env = {
        "DATABASE_URL": f"{server.replace('postgresql://', 'postgresql+asyncpg://')}/{name}",
        "SECRET_KEY": "benchmark-secret-key-not-for-production",
        "API_KEYS": KEY,
        "DATA_DIR": str(work / "data"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT / "src"),
        # activating 30,000 services and their first probes holds the event loop for
        # seconds: a 2 s connect timeout then fails the start ("database unavailable")
        "DB_CONNECT_TIMEOUT": str(args.db_timeout),
        "DB_POOL_TIMEOUT": str(args.db_timeout),
        "DB_STATEMENT_TIMEOUT": str(args.db_timeout),
    }
    replicas = [
        AgentProcess(
            config=str(work / "selfheal.yaml"),
            env=env,
            port=free_port(),
            log_path=work / f"replica{i}.log",
        )
        for i in range(3)
    ]
    t0 = time.monotonic()
    await _seed(env["DATABASE_URL"], n, ports, interval)
    print(f"seeded {n} services in {time.monotonic() - t0:.1f} s", flush=True)
    report: dict[str, Any] = {"services": n, "interval": interval, "cores": os.cpu_count()}
    report["load_average_at_start"] = os.getloadavg()
    timeout = aiohttp.ClientTimeout(total=60)
    conn = await asyncpg.connect(f"{server}/{name}")
    try:
        async with aiohttp.ClientSession(headers={"X-API-Key": KEY}, timeout=timeout) as session:
            t0 = time.monotonic()
            await _start(session, replicas[0], n)
            report["start_one_s"] = round(time.monotonic() - t0, 1)
            print(
                f"phase A: 1 replica loaded {n} services in {report['start_one_s']} s", flush=True
            )
            await asyncio.sleep(args.warmup)
            one = Window(replicas[:1], conn, name)
            report["one"] = await one.measure(session, args.duration)

            t0 = time.monotonic()
            await asyncio.gather(*(_start(session, r, n) for r in replicas[1:]))
            report["start_two_more_s"] = round(time.monotonic() - t0, 1)
            print(f"phase B: 2 more replicas up in {report['start_two_more_s']} s", flush=True)
            await asyncio.sleep(args.warmup)
            three = Window(replicas, conn, name)
            report["three"] = await three.measure(session, args.duration)

            report["exited_on_their_own"] = _exited(replicas)
            members = await _members(conn)
            victim = next(r for r in replicas[1:] if r.proc and r.proc.returncode is None)
            killed_id = members.get(_pid(victim))
            live = sorted(members.values())
            print(f"failover: SIGKILL {victim.url} of members {live}", flush=True)
            killed_at = time.monotonic()
            victim.kill()
            await asyncio.sleep(args.failover_wait)
            end = time.monotonic()
            hits = await _dump(ports[0], work / "hits.json")
            owned = [
                i
                for i in range(n)
                if killed_id and owner(live, ServiceKey("default", f"svc-{i:05d}")) == killed_id
            ]
            report["failover"] = _failover(hits, owned, killed_at, end)
            after = Window([], conn, name)
            after.start, after.end = end - 2 * interval, end
            survivors: dict[str, Any] = {"cpu_seconds": [0.0]}
            _probe_figures(survivors, hits, after, n, interval)
            report["failover"]["after_per_service_per_interval"] = survivors[
                "per_service_per_interval"
            ]
        _probe_figures(report["one"], hits, one, n, interval)
        _probe_figures(report["three"], hits, three, n, interval)
        a = report["one"]["cpu_seconds_per_1000_probes"]
        b = report["three"]["cpu_seconds_per_1000_probes"]
        report["cpu_per_probe_ratio_three_to_one"] = round(b / a, 3) if a else None
        report["load_average_at_end"] = os.getloadavg()
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))
        target.terminate()
        await conn.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return report


def render(r: dict[str, Any]) -> str:
    """A table of the figures."""
    rows = [
        f"{r['services']} services every {r['interval']:g} s on {r['cores']} cores "
        f"(load average {r['load_average_at_start'][0]:.1f} at start)",
        "",
        f"{'':12} {'probes/s':>9} {'CPU-s/1k':>9} {'per svc/interval mean p5 p95':>30} "
        f"{'delay p99 ms':>14} {'db xact/s':>10} {'rows w/s':>9} RSS MB",
    ]
    for label, key in (("1 replica", "one"), ("3 replicas", "three")):
        p = r[key]
        s = p["per_service_per_interval"]
        db = p["database"]
        writes = db["tup_inserted_per_s"] + db["tup_updated_per_s"] + db["tup_deleted_per_s"]
        rows.append(
            f"{label:12} {p['probes_per_second']:>9} {p['cpu_seconds_per_1000_probes']:>9} "
            f"{s['mean']:>18} {s['p5']:>5} {s['p95']:>5} "
            f"{p['probe_delay_p99_ms']!s:>14} {db['xacts_per_s']:>10} {writes:>9.0f} "
            f"{p['rss_mb']}"
        )
    for label, key in (("1 replica", "one"), ("3 replicas", "three")):
        tables = r[key]["database"]["row_writes_per_s_by_table"]
        rows.append(f"{label} row writes/s by table: {tables}")
    if r.get("exited_on_their_own"):
        rows.append(f"replicas that exited on their own: {r['exited_on_their_own']}")
    f = r["failover"]
    rows += [
        "",
        f"CPU per probe, 3 replicas / 1 replica: {r['cpu_per_probe_ratio_three_to_one']}",
        f"failover (SIGKILL, {f['services_owned']} services owned): gap max {f['gap_max_s']} s, "
        f"p99 {f['gap_p99_s']} s; all probed again {f['all_probed_again_after_s']} s after the "
        f"kill; never again: {f['never_probed_again']}; after: "
        f"{f['after_per_service_per_interval']}",
    ]
    return "\n".join(rows)


def cli() -> None:
    """Parse arguments, run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=30_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0, help="each measured window")
    parser.add_argument("--warmup", type=float, default=20.0, help="before each window")
    parser.add_argument("--failover-wait", type=float, default=30.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "SELFHEAL_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
        ),
        help="a PostgreSQL server (any database on it) where bench_cluster_<pid> is created",
    )
    parser.add_argument(
        "--db-timeout", type=float, default=10.0, help="DB_CONNECT/POOL/STATEMENT_TIMEOUT"
    )
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    report = asyncio.run(run(args))
    print(render(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    cli()
