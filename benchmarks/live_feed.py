"""Live feed throughput: does the feed keep up with N status changes per second?

The agent runs as its own process (``selfheal serve``) with ``--rate`` services
probed once a second. Each service's health endpoint (on a small server in this
process) answers 200 and 500 in turn, so every probe is a status change: the
real path, probe -> monitor -> bus -> feed, at ``--rate`` changes per second.
One SSE client and one WebSocket client (``--clients`` of each) read the feed
in this process; for every ``service.status`` event they note the delay from
the probe that caused it (the event's ``sample.at``) to its arrival.

Reported: status changes the agent published in the window (its own counter,
``agent_events_total{type="service.status"}``), how many each client received,
the delivered rate, latency p50/p95/p99/max, and the events the feed dropped.

    python benchmarks/live_feed.py [--rate 200] [--duration 20] [--warmup 5] [--clients 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key-0123456789"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def flapping_server(port: int) -> web.AppRunner:
    """GET /h/{i}: 200 and 500 in turn, per path."""
    state: dict[str, bool] = {}

    async def health(request: web.Request) -> web.Response:
        name = request.match_info["i"]
        ok = state[name] = not state.get(name, False)
        return web.json_response({"status": "ok" if ok else "down"}, status=200 if ok else 500)

    app = web.Application()
    app.router.add_get("/h/{i}", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


class Client:
    """One feed reader; records (arrival - probe time) for each status event."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.seen: list[tuple[float, float]] = []  # (probe time, latency)
        self.counting = False

    def take(self, raw: str | bytes) -> None:
        if not self.counting:
            return
        event = json.loads(raw)
        if event.get("type") != "service.status":
            return
        at = event["data"]["sample"]["at"]
        self.seen.append((at, time.time() - at))

    def window(self, start: float, end: float) -> list[float]:
        """Latencies of the events whose probe happened in [start, end)."""
        return [latency for at, latency in self.seen if start <= at < end]

    async def run_sse(self, url: str) -> None:
        async with (
            httpx.AsyncClient(timeout=None) as client,
            client.stream("GET", f"{url}/api/events/stream", headers={"X-API-Key": KEY}) as resp,
        ):
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    self.take(line[6:])

    async def run_ws(self, url: str) -> None:
        ws_url = url.replace("http://", "ws://") + "/api/events/ws"
        async with aiohttp.ClientSession() as session, session.ws_connect(ws_url) as ws:
            await ws.send_json({"api_key": KEY})
            await ws.receive()  # "connected"
            async for message in ws:
                self.take(message.data)


async def status_events_published(url: str) -> float:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics", headers={"X-API-Key": KEY})).text
    found = re.search(r'^agent_events_total\{type="service.status"\} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def main(args: argparse.Namespace) -> dict[str, Any]:
    flap_port, agent_port = free_port(), free_port()
    runner = await flapping_server(flap_port)
    work = Path(tempfile.mkdtemp(prefix="selfheal-live-feed-"))
    config = work / "selfheal.yaml"
    lines = ["services:"]
    for i in range(args.rate):
        lines += [
            f"  - id: svc-{i}",
            f"    health_url: http://127.0.0.1:{flap_port}/h/{i}",
            "    interval: 1s",
            "    retry_delay: 1s",
            "    timeout: 1s",
        ]
    config.write_text("\n".join(lines) + "\n")
    env = os.environ | {
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'selfheal.db'}",
        "SECRET_KEY": "benchmark-secret-key-not-for-production",
        "API_KEYS": KEY,
        "DATA_DIR": str(work / "data"),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT / "src"),
    }
    agent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "selfheal.cli.main",
        "serve",
        "--config",
        str(config),
        "--port",
        str(agent_port),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(work / "agent.log", "wb"),  # noqa: SIM115 - handed to the child
    )
    url = f"http://127.0.0.1:{agent_port}"
    clients: list[Client] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(200):
                try:
                    if (await probe.get(f"{url}/health", timeout=0.5)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"the agent did not start; see {work / 'agent.log'}")
        for _ in range(args.clients):
            for kind in ("sse", "websocket"):
                client = Client(kind)
                clients.append(client)
                runner_of = client.run_sse if kind == "sse" else client.run_ws
                tasks.append(asyncio.create_task(runner_of(url)))
        await asyncio.sleep(args.warmup)
        for client in clients:
            client.counting = True
        await asyncio.sleep(1.0)
        before, start_wall = await status_events_published(url), time.time()
        await asyncio.sleep(args.duration)
        after, end_wall = await status_events_published(url), time.time()
        window = end_wall - start_wall
        await asyncio.sleep(1.0)  # let events already published arrive
        for client in clients:
            client.counting = False
        async with httpx.AsyncClient() as probe:
            metrics = (await probe.get(f"{url}/metrics", headers={"X-API-Key": KEY})).text
        dropped = re.search(r"^agent_live_feed_dropped_events_total (\S+)$", metrics, re.M)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        agent.terminate()
        await agent.wait()
        await runner.cleanup()
    published = after - before
    report: dict[str, Any] = {
        "services": args.rate,
        "window_s": round(window, 2),
        "status_changes_published": int(published),
        "published_per_s": round(published / window, 1),
        "dropped_events": float(dropped.group(1)) if dropped else None,
        "clients": [],
    }
    for client in clients:
        lat = client.window(start_wall, end_wall)
        report["clients"].append(
            {
                "feed": client.kind,
                "received": len(lat),
                "delivered_per_s": round(len(lat) / window, 1),
                "delivered_share": round(len(lat) / published, 4) if published else None,
                "latency_ms": {
                    "p50": round(statistics.median(lat) * 1000, 1) if lat else None,
                    "p95": round(percentile(lat, 0.95) * 1000, 1),
                    "p99": round(percentile(lat, 0.99) * 1000, 1),
                    "max": round(max(lat) * 1000, 1) if lat else None,
                },
            }
        )
    return report


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200, help="status changes per second")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--clients", type=int, default=1, help="SSE and WebSocket clients each")
    report = asyncio.run(main(parser.parse_args()))
    print(json.dumps(report, indent=2))
    ok = all(
        c["delivered_share"] is not None
        and c["delivered_share"] >= 0.99
        and c["latency_ms"]["p99"] < 1000
        for c in report["clients"]
    )
    print("keeps up" if ok else "FALLS BEHIND", file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    cli()
