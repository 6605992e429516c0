"""A demo service: a real HTTP process that breaks in one chosen way after a delay.

Faults and what heals them (through the signed webhook, verified with the SDK):

- ``memory``: allocates memory and reports it climbing past 90 %; ``clear_cache`` frees it.
- ``errors``: reports an error rate of 0.6; ``rollback`` ends it.
- ``latency``: reports p99 latency of 2.4 s; ``clear_cache`` does not help, ``scale`` does.
- ``crash``: the process exits; the agent, its parent, restarts it (a supervised process).
- ``hang``: the event loop blocks; probes time out; a local command restarts it.

Run: ``SELFHEAL_DEMO_SECRET=s python -m selfheal.demo.service --name N --port P --fault F``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from self_healing_sdk.signing import ReplayGuard, SignatureError, verify

MEMORY_LIMIT = 64 * 1024 * 1024


class DemoService:
    """State of one demo service: which fault, whether it is active, what heals it."""

    def __init__(self, name: str, secret: str, fault: str | None, after: float) -> None:
        self.name = name
        self.secret = secret
        self.fault = fault
        self.after = after
        self.started = time.monotonic()
        self.broken = False
        self.ballast: list[bytearray] = []
        self.replays = ReplayGuard()

    def health(self) -> dict[str, Any]:
        memory = 35.0 + 60.0 * min(1.0, sum(map(len, self.ballast)) / MEMORY_LIMIT)
        body: dict[str, Any] = {
            "status": "ok",
            "cpu": 12.0,
            "memory": round(memory, 1),
            "error_rate": 0.01,
            "latency_ms": 42.0,
            "version": "1.0",
        }
        if self.broken and self.fault == "errors":
            body["error_rate"], body["status"] = 0.6, "degraded"
        if self.broken and self.fault == "latency":
            body["latency_ms"] = 2400.0
        return body

    def heal(self, action: str) -> tuple[int, dict[str, Any]]:
        """Carry out an action; the answer says what happened."""
        fixes = {"memory": {"clear_cache", "restart"}, "errors": {"rollback", "restart"}}
        fixes["latency"] = {"scale", "restart"}
        if action not in {"clear_cache", "rollback", "scale", "restart", "degrade"}:
            return 404, {"error": f"unknown action {action}"}
        if self.fault in fixes and action in fixes[self.fault] and self.broken:
            self.broken = False
            self.fault = None
            self.ballast.clear()
            return 200, {"done": action, "effect": "fixed"}
        return 200, {"done": action, "effect": "nothing to do"}

    async def run_fault(self) -> None:
        await asyncio.sleep(self.after)
        if self.fault is None:
            return
        print(f"{self.name}: fault {self.fault} starts", flush=True)
        if self.fault == "crash":
            os._exit(3)
        self.broken = True
        if self.fault == "hang":
            time.sleep(3600)  # noqa: ASYNC251 - the point: block the loop, every request hangs
        while self.fault == "memory" and self.broken:
            if sum(map(len, self.ballast)) < MEMORY_LIMIT:
                self.ballast.append(bytearray(8 * 1024 * 1024))
            await asyncio.sleep(0.25)


def build_app(service: DemoService) -> web.Application:
    async def health(_request: web.Request) -> web.Response:
        return web.json_response(service.health())

    async def webhook(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify(
                service.secret,
                request.headers,
                raw,
                service_id=service.name,
                replay_guard=service.replays,
            )
        except SignatureError as exc:
            return web.json_response({"error": exc.reason}, status=401)
        action = json.loads(raw).get("action", "")
        status, body = service.heal(action)
        print(f"{service.name}: webhook {action} -> {body}", flush=True)
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_post("/webhook", webhook)
    return app


async def serve(args: argparse.Namespace) -> None:
    service = DemoService(args.name, args.secret, args.fault, args.after)
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, reuse_address=True)
    await site.start()
    if args.pidfile:
        Path(args.pidfile).write_text(str(os.getpid()))  # noqa: ASYNC240 - once, tiny
    print(f"{args.name}: listening on 127.0.0.1:{args.port}", flush=True)
    fault = asyncio.create_task(service.run_fault())
    try:
        await asyncio.Event().wait()
    finally:
        fault.cancel()
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--secret", default=os.environ.get("SELFHEAL_DEMO_SECRET"), help="(or SELFHEAL_DEMO_SECRET)"
    )
    parser.add_argument("--fault", choices=["memory", "errors", "latency", "crash", "hang"])
    parser.add_argument("--after", type=float, default=5.0, help="seconds before the fault")
    parser.add_argument("--pidfile")
    parser.add_argument("--once", help="file marking the fault as done: a restart runs clean")
    args = parser.parse_args(argv)
    if args.once:
        if Path(args.once).exists():
            args.fault = None
        else:
            Path(args.once).touch()  # a process started again by its supervisor is healthy
    if not args.secret:
        parser.error("a secret is required (--secret or SELFHEAL_DEMO_SECRET)")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
