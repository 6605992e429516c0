"""A complete FastAPI service that joins selfheal through the async SDK.

Run an agent (``selfheal serve``), give this service the API key it printed, start it::

    pip install 'self-healing-sdk[fastapi]' uvicorn
    export SELFHEAL_API_KEY=sh_...
    python examples/fastapi_service.py --port 6001

``AsyncSelfHealingAgent`` lives in the app's lifespan: it registers the
service (``orders-api``), sends heartbeats from a task in the server's loop, and
stops with it. The SDK's router serves ``/health`` and ``/webhook``; a small
middleware counts requests so the error rate and latency are real figures.
Handlers may be coroutines (``scale``, ``degrade``) or plain functions, which
run in a worker thread (``clear_cache``, ``restart``, ``rollback``).

``GET /orders/{id}`` is the business route; ``POST /chaos`` with
``{"error_rate": 0.6}`` makes that share of orders fail, ``{"slow_ms": 2000}``
slows them down; ``GET /status`` shows what the health callback last received.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response

from self_healing_sdk import AsyncSelfHealingAgent, HealthStatus
from self_healing_sdk.fastapi import router

VERSION = "2.0.1"


class OrdersState:
    """What the fixes act on."""

    def __init__(self) -> None:
        self.cache: dict[int, dict[str, Any]] = {}
        self.error_rate = 0.0
        self.slow_ms = 0.0
        self.degraded = False
        self.replicas = 1
        self.version = VERSION
        self.last_status: HealthStatus | None = None
        self.callbacks = 0


def build_agent(args: argparse.Namespace, state: OrdersState) -> AsyncSelfHealingAgent:
    """The async SDK client with this service's handlers and hooks."""
    agent = AsyncSelfHealingAgent(
        agent_url=args.agent_url,
        user_id=args.user_id,
        service_id=args.service_id,
        secret=args.secret,
        heartbeat_interval=args.heartbeat_interval,
    )

    @agent.action("clear_cache")
    def clear_cache(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        cleared = len(state.cache)
        state.cache.clear()
        return {"cleared_entries": cleared}

    @agent.action("restart")
    def restart(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        # a soft restart: a real service would exit and let its supervisor start it again
        state.cache.clear()
        state.error_rate, state.slow_ms, state.degraded = 0.0, 0.0, False
        return {"restarted": True, "pid": os.getpid()}

    @agent.action("scale")
    async def scale(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        await asyncio.sleep(0.05)  # e.g. ask the orchestrator for more replicas
        state.replicas = int(params.get("replicas", state.replicas + 1))
        state.slow_ms = 0.0  # more replicas: the queue drains
        return {"replicas": state.replicas}

    @agent.action("degrade")
    async def degrade(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        state.degraded = bool(params.get("on", True))
        return {"degraded": state.degraded}

    @agent.action("rollback")
    def rollback(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        state.error_rate = 0.0
        state.version = params.get("to", "2.0.0")
        return {"version": state.version}

    def figures() -> dict[str, Any]:
        return {
            "status": "degraded" if state.degraded else "ok",
            "queue_depth": int(state.slow_ms // 100),
            "replicas": state.replicas,
            "version": state.version,
        }

    async def on_health(status: HealthStatus) -> None:
        previous, state.last_status = state.last_status, status
        state.callbacks += 1
        if previous is None or previous.healthy != status.healthy:
            incidents = len(status.agent.incidents) if status.agent else "?"
            print(
                f"{args.service_id}: healthy={status.healthy} "
                f"agent_reachable={status.agent_reachable} open_incidents={incidents}",
                flush=True,
            )

    agent.set_metrics_hook(figures)
    agent.set_health_callback(on_health)
    return agent


def build_app(args: argparse.Namespace) -> FastAPI:
    """The FastAPI app with the agent in its lifespan."""
    state = OrdersState()
    agent = build_agent(args, state)
    base = f"http://{args.host}:{args.port}"

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        result = await agent.register(
            name="Orders API",
            health_url=f"{base}/health",
            webhook_url=f"{base}/webhook",
            tags=["api"],
            metadata={"version": VERSION, "framework": "fastapi"},
            interval=args.poll_interval,
            heartbeat_timeout=args.heartbeat_timeout,
        )
        print(f"{args.service_id}: listening on {base}; registered={result.ok}", flush=True)
        async with agent:  # start_monitoring() ... aclose()
            yield

    app = FastAPI(title="Orders API", lifespan=lifespan)
    app.include_router(router(agent))

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            agent.report_error(exc, context={"path": request.url.path})
            agent.record_request(ok=False, latency_ms=(time.perf_counter() - started) * 1000)
            raise
        if request.url.path not in ("/health", "/webhook"):
            agent.record_request(
                ok=response.status_code < 500, latency_ms=(time.perf_counter() - started) * 1000
            )
        return response

    @app.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, Any]:
        if state.slow_ms:
            await asyncio.sleep(state.slow_ms / 1000)
        if random.random() < state.error_rate:
            error = RuntimeError("inventory service timed out")
            agent.report_error(error, context={"order_id": order_id})
            raise HTTPException(status_code=503, detail=str(error))
        order = state.cache.setdefault(order_id, {"id": order_id, "status": "shipped"})
        return order | {"version": state.version}

    @app.post("/chaos")
    async def chaos(body: dict[str, float]) -> dict[str, float]:
        state.error_rate = float(body.get("error_rate", state.error_rate))
        state.slow_ms = float(body.get("slow_ms", state.slow_ms))
        return {"error_rate": state.error_rate, "slow_ms": state.slow_ms}

    @app.get("/status")
    async def status() -> dict[str, Any]:
        last = state.last_status
        view = last.agent if last else None
        return {
            "callbacks": state.callbacks,
            "healthy": last.healthy if last else None,
            "agent_reachable": last.agent_reachable if last else False,
            "agent": None
            if view is None
            else {
                "status": view.status,
                "healthy": view.healthy,
                "incidents": [i.type for i in view.incidents],
                "actions": [a.action for a in view.actions],
            },
            "dropped_events": agent.dropped_events,
            "queued_events": agent.queued_events,
        }

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the agent's URL and the secret may also come from the env)."""
    parser = argparse.ArgumentParser(description="A FastAPI service healed by selfheal.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6001)
    parser.add_argument(
        "--agent-url", default=os.environ.get("SELFHEAL_AGENT_URL", "http://127.0.0.1:5000")
    )
    parser.add_argument("--service-id", default="orders-api")
    parser.add_argument("--user-id", default="team-a")
    parser.add_argument("--secret", default=os.environ.get("SERVICE_SECRET", "s3cret"))
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument("--heartbeat-timeout", type=float, help="default: 2 intervals")
    parser.add_argument("--poll-interval", type=float, help="how often the agent probes /health")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Serve with uvicorn; SIGTERM or Ctrl-C runs the lifespan's clean shutdown."""
    args = parse_args(argv)
    uvicorn.run(build_app(args), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
