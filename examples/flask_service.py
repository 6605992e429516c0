"""A complete Flask service that joins selfheal through the SDK and lets it heal the service.

Run an agent (``selfheal serve``), give this service the API key it printed, start it::

    pip install 'self-healing-sdk[flask]'        # the SDK alone, plus Flask
    export SELFHEAL_API_KEY=sh_...               # picks the tenant
    python examples/flask_service.py --port 6000

It registers as ``payment-api`` (an upsert: restarting it is harmless), serves
its ``/health`` and ``/webhook`` from the SDK's blueprint, pushes a heartbeat
every ``--heartbeat-interval`` seconds and carries out the agent's fixes:
``clear_cache``, ``restart``, ``degrade``, ``scale`` and ``rollback``.

Its business route is ``GET /pay``. ``POST /chaos`` with ``{"error_rate": 0.6}``
makes that share of payments fail: the error rate the blueprint counts goes
above the agent's threshold, the agent opens an incident and asks for a
``rollback``, which ends the chaos. ``GET /status`` shows what the health
callback last received (this process's figures and the agent's view).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from self_healing_sdk import HealthStatus, SelfHealingAgent
from self_healing_sdk.flask import blueprint

VERSION = "1.4.2"


class PaymentState:
    """What the fixes act on: a cache, a degraded mode, workers, injected chaos."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.cache: dict[str, Any] = {}
        self.error_rate = 0.0
        self.degraded = False
        self.workers = 2
        self.restarts = 0
        self.version = VERSION
        self.last_status: HealthStatus | None = None
        self.callbacks = 0


def build_agent(args: argparse.Namespace, state: PaymentState) -> SelfHealingAgent:
    """The SDK client with this service's action handlers and hooks."""
    agent = SelfHealingAgent(
        agent_url=args.agent_url,
        user_id=args.user_id,
        service_id=args.service_id,
        secret=args.secret,
        heartbeat_interval=args.heartbeat_interval,
        queue_size=args.queue_size,
    )

    @agent.action("clear_cache")
    def clear_cache(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            cleared = len(state.cache)
            state.cache.clear()
        return {"cleared_entries": cleared}

    @agent.action("restart")
    def restart(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        # a soft restart: a real service would exit here and let its supervisor start it
        with state.lock:
            state.cache.clear()
            state.error_rate = 0.0
            state.degraded = False
            state.restarts += 1
            return {"restarted": True, "restarts": state.restarts, "pid": os.getpid()}

    @agent.action("degrade")
    def degrade(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            state.degraded = bool(params.get("on", True))
            return {"degraded": state.degraded}

    @agent.action("scale")
    def scale(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            state.workers = int(params.get("workers", state.workers + 1))
            return {"workers": state.workers}

    @agent.action("rollback")
    def rollback(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            state.error_rate = 0.0
            state.version = params.get("to", "1.4.1")
            return {"version": state.version}

    def figures() -> dict[str, Any]:
        with state.lock:
            return {
                "status": "degraded" if state.degraded else "ok",
                "cache_entries": len(state.cache),
                "workers": state.workers,
                "version": state.version,
            }

    def on_health(status: HealthStatus) -> None:
        with state.lock:
            previous = state.last_status
            state.last_status = status
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


def build_app(agent: SelfHealingAgent, state: PaymentState) -> Flask:
    """The Flask app: business routes plus the SDK's blueprint."""
    app = Flask(__name__)
    app.register_blueprint(blueprint(agent))

    @app.get("/pay")
    def pay() -> Any:
        with state.lock:
            failing = random.random() < state.error_rate
            state.cache[f"p{len(state.cache) % 1000}"] = time.time()
        if failing:
            raise RuntimeError("payment processor rejected the request")
        return jsonify({"paid": True, "version": state.version})

    @app.post("/chaos")
    def chaos() -> Any:
        body = request.get_json(silent=True) or {}
        with state.lock:
            state.error_rate = float(body.get("error_rate", state.error_rate))
            return jsonify({"error_rate": state.error_rate})

    @app.get("/status")
    def status() -> Any:
        with state.lock:
            last = state.last_status
            callbacks = state.callbacks
        agent_view = None
        if last is not None and last.agent is not None:
            agent_view = {
                "status": last.agent.status,
                "healthy": last.agent.healthy,
                "incidents": [i.type for i in last.agent.incidents],
                "actions": [a.action for a in last.agent.actions],
            }
        return jsonify(
            {
                "callbacks": callbacks,
                "healthy": last.healthy if last else None,
                "agent_reachable": last.agent_reachable if last else False,
                "agent": agent_view,
                "dropped_events": agent.dropped_events,
                "queued_events": agent.queued_events,
            }
        )

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the agent's URL and the secret may also come from the env)."""
    parser = argparse.ArgumentParser(description="A Flask service healed by selfheal.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6000)
    parser.add_argument(
        "--agent-url", default=os.environ.get("SELFHEAL_AGENT_URL", "http://127.0.0.1:5000")
    )
    parser.add_argument("--service-id", default="payment-api")
    parser.add_argument("--user-id", default="team-a")
    parser.add_argument("--secret", default=os.environ.get("SERVICE_SECRET", "s3cret"))
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument("--heartbeat-timeout", type=float, help="default: 2 intervals")
    parser.add_argument("--poll-interval", type=float, help="how often the agent probes /health")
    parser.add_argument(
        "--queue-size", type=int, default=1000, help="error events kept for the agent"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Register, serve, heartbeat; SIGTERM or Ctrl-C stops it cleanly."""
    args = parse_args(argv)
    state = PaymentState()
    agent = build_agent(args, state)
    app = build_app(agent, state)
    server = make_server(args.host, args.port, app, threaded=True)
    base = f"http://{args.host}:{server.port}"
    result = agent.register(
        name="Payment API",
        health_url=f"{base}/health",
        webhook_url=f"{base}/webhook",
        tags=["critical", "payments"],
        metadata={"version": VERSION, "framework": "flask"},
        interval=args.poll_interval,
        heartbeat_timeout=args.heartbeat_timeout,
    )
    print(f"{args.service_id}: listening on {base}; registered={result.ok}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with agent:  # start_monitoring() ... close()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()
