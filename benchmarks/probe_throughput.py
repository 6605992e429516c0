"""Probe throughput: the agent against a bare aiohttp loop, in one run.

N loopback services (default 10,000) probed every 10 s (1,000 probes/s) for a
measured window (default 60 s, after a warm-up). Reports for each contender:
probes per second achieved, CPU-seconds per 1,000 probes, peak memory (RSS),
and the lateness of probes against their schedule (p50, p99); then the ratio
of the agent's CPU per probe to the bare loop's.

The services are paths on a small, cheap HTTP server in its own process (one
listening port per 1,000 services), so the target's CPU is not counted. Each
contender runs in its own process; CPU is that process's user+system time.

    python benchmarks/probe_throughput.py [--services 10000] [--interval 10] [--duration 60]

``--old-rows N`` seeds the agent's store with N rollups past the retention horizon
and prunes them (in batches, as the agent's retention task does) during the
measured window, to show what pruning does to the probe path's lateness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

BODY = b'{"status":"ok","cpu":12.5,"memory":41.0,"error_rate":0.001,"latency_ms":23.0}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)
PER_PORT = 1000


# -- the target: a minimal keep-alive HTTP server -----------------------------------------


class _Target(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            self.buffer = self.buffer[end + 4 :]
            self.transport.write(RESPONSE)


async def _serve(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    for port in ports:
        await loop.create_server(_Target, "127.0.0.1", port, backlog=4096, reuse_address=True)
    print("ready", flush=True)
    await asyncio.Event().wait()


def urls(services: int, base_port: int) -> list[str]:
    """One health URL per service, spread over ports."""
    return [f"http://127.0.0.1:{base_port + i // PER_PORT}/svc/{i}/health" for i in range(services)]


# -- contenders ----------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _usage() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def bare_loop(
    targets: list[str], interval: float, warmup: float, duration: float
) -> dict[str, Any]:
    """The reference: aiohttp requests on a schedule, nothing else."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0)
    session = aiohttp.ClientSession(connector=connector)
    timeout = aiohttp.ClientTimeout(total=5)
    loop = asyncio.get_running_loop()
    start = loop.time()
    window = (start + warmup, start + warmup + duration)
    count = 0
    lateness: list[float] = []

    async def probe(url: str) -> None:
        nonlocal count
        due = loop.time() + random.uniform(0, interval)
        while True:
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            try:
                async with session.get(url, timeout=timeout) as response:
                    await response.read()
            except Exception:
                pass
            if window[0] <= now < window[1]:
                count += 1
                lateness.append(now - due)
            due += interval

    tasks = [asyncio.create_task(probe(u)) for u in targets]
    await asyncio.sleep(warmup)
    cpu0 = _usage()
    await asyncio.sleep(duration)
    cpu = _usage() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()
    return _report("bare aiohttp loop", count, cpu, duration, lateness)


async def agent_loop(
    targets: list[str], interval: float, warmup: float, duration: float, old_rows: int = 0
) -> dict[str, Any]:
    """The agent: scheduler, probe, monitor, detection, rollups, metrics; SQLite storage."""
    from pydantic import SecretStr

    from selfheal.config import Settings
    from selfheal.runtime.agent import Agent
    from selfheal.storage.tables import Service

    tmp = Path(tempfile.mkdtemp(prefix="selfheal-bench-"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        SECRET_KEY=SecretStr("benchmark-secret-key-0123456789"),
        API_KEYS=[SecretStr("bench")],
        DATA_DIR=tmp,
        CHECK_INTERVAL=interval,
        LOG_LEVEL="WARNING",
        RETENTION_DAYS=0,  # pruning, if any, runs in the measured window (below)
    )
    agent = Agent(settings)
    await agent.db.migrate()
    async with agent.db.session() as session:
        from selfheal.storage.repositories.tenants import ensure_tenant

        await ensure_tenant(session=session, tenant_id="default")
        session.add_all(
            Service(tenant_id="default", service_id=f"svc-{i}", name=f"svc-{i}", health_url=url)
            for i, url in enumerate(targets)
        )
    if old_rows:
        sys.path.insert(0, str(ROOT))
        from tests.integration.test_retention import _bulk_rollups

        await _bulk_rollups(agent.db, old_rows, services=20, tenant=False)
    await agent.start()
    await asyncio.sleep(warmup)
    probes0 = agent.scheduler.probes
    late0 = agent.scheduler._lateness_n
    cpu0 = _usage()
    pruning = asyncio.create_task(_prune(agent.db)) if old_rows else None
    await asyncio.sleep(duration)
    pruned = await pruning if pruning else None
    cpu = _usage() - cpu0
    count = agent.scheduler.probes - probes0
    taken = agent.scheduler._lateness_n - late0
    lateness = agent.scheduler.lateness()[-taken:] if taken else []
    failed = agent.monitor.checks_failed
    await agent.stop()
    result = _report("selfheal agent", count, cpu, duration, lateness)
    result["failed_probes"] = failed
    if pruned is not None:
        result["pruned"] = pruned
    return result


async def _prune(db: Any) -> dict[str, Any]:
    """What the retention task does, started at the beginning of the measured window."""
    from selfheal.runtime.retention import Pruner, RetentionPolicy

    policy = RetentionPolicy(days={"rollups": 30}, batch=2000)
    report = await Pruner(db, policy).prune_once()
    return {
        "rows": report.total,
        "seconds": round(report.seconds, 2),
        "batches": report.batches,
        "longest_batch_ms": round(report.longest_batch * 1000, 1),
    }


def _report(
    name: str, count: int, cpu: float, duration: float, lateness: list[float]
) -> dict[str, Any]:
    return {
        "name": name,
        "probes": count,
        "probes_per_second": round(count / duration, 1),
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_1000_probes": round(1000 * cpu / max(count, 1), 4),
        "rss_mb": round(_rss_mb(), 1),
        "lateness_p50_ms": round(1000 * _percentile(lateness, 0.50), 2),
        "lateness_p99_ms": round(1000 * _percentile(lateness, 0.99), 2),
    }


# -- orchestration -------------------------------------------------------------------------


def _child(args: argparse.Namespace) -> None:
    targets = urls(args.services, args.base_port)
    if args.child == "bare":
        result = asyncio.run(bare_loop(targets, args.interval, args.warmup, args.duration))
    else:
        result = asyncio.run(
            agent_loop(targets, args.interval, args.warmup, args.duration, args.old_rows)
        )
    print(json.dumps(result), flush=True)


def _run_child(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--services",
        str(args.services),
        "--interval",
        str(args.interval),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--base-port",
        str(args.base_port),
        "--old-rows",
        str(args.old_rows),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--old-rows", type=int, default=0, help="rollups pruned while measured")
    parser.add_argument("--child", choices=["bare", "agent", "target"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "target":
        ports = sorted({args.base_port + i // PER_PORT for i in range(args.services)})
        asyncio.run(_serve(ports))
        return
    if args.child:
        _child(args)
        return

    ports = (args.services + PER_PORT - 1) // PER_PORT
    target = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            "target",
            "--services",
            str(args.services),
            "--base-port",
            str(args.base_port),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert target.stdout is not None
        if target.stdout.readline().strip() != "ready":
            raise SystemExit("target server did not start")
        print(
            f"{args.services} services on {ports} loopback ports, probed every {args.interval:g}s "
            f"({args.services / args.interval:.0f} probes/s expected); {args.warmup:g}s warm-up, "
            f"{args.duration:g}s measured; cores: {os.cpu_count()}\n"
        )
        results = [_run_child("bare", args), _run_child("agent", args)]
    finally:
        target.terminate()
    columns = ("probes/s", "CPU-s/1k", "RSS MB", "late p50 ms", "late p99 ms")
    header = f"{'':20} " + " ".join(f"{c:>{max(9, len(c))}}" for c in columns)
    print(header)
    for r in results:
        print(
            f"{r['name']:20} {r['probes_per_second']:>9} {r['cpu_seconds_per_1000_probes']:>9} "
            f"{r['rss_mb']:>8} {r['lateness_p50_ms']:>12} {r['lateness_p99_ms']:>12}"
        )
    bare, agent = results
    ratio = agent["cpu_seconds_per_1000_probes"] / bare["cpu_seconds_per_1000_probes"]
    print(f"\nagent CPU per probe / bare aiohttp loop CPU per probe: {ratio:.2f}x")
    print(f"agent failed probes during the run: {agent.get('failed_probes')}")
    if "pruned" in agent:
        print(f"pruned during the measured window: {agent['pruned']}")
    print(json.dumps({"bare": bare, "agent": agent, "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
