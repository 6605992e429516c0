"""A service on the standard library alone (wsgiref) that joins selfheal through the SDK.

It needs nothing but ``pip install self-healing-sdk`` (httpx and psutil), which
makes it the smallest complete example: a plain WSGI app wrapped in
``SelfHealingWSGI`` (``/health``, ``/webhook``, request counting), a threaded
``wsgiref`` server, and the same fixes as the other examples::

    export SELFHEAL_API_KEY=sh_...
    python examples/wsgi_service.py --port 6002

``GET /`` answers; ``POST /chaos?error_rate=0.6`` makes that share of requests
fail until the agent's ``rollback`` (or ``restart``) ends it; ``GET /status``
shows what the health callback last received.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIEnvironment

from self_healing_sdk import HealthStatus, SelfHealingAgent
from self_healing_sdk.wsgi import SelfHealingWSGI


class ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request, like any production WSGI server would give."""

    daemon_threads = True


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class State:
    """What the fixes act on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.error_rate = 0.0
        self.restarts = 0
        self.last_status: HealthStatus | None = None
        self.callbacks = 0


def json_answer(start_response: StartResponse, status: str, body: Any) -> list[bytes]:
    """A JSON response."""
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [data]


def build(args: argparse.Namespace) -> tuple[SelfHealingAgent, SelfHealingWSGI]:
    """The SDK client and the wrapped WSGI app."""
    state = State()
    agent = SelfHealingAgent(
        agent_url=args.agent_url,
        user_id=args.user_id,
        service_id=args.service_id,
        secret=args.secret,
        heartbeat_interval=args.heartbeat_interval,
    )

    @agent.action("rollback")
    def rollback(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            state.error_rate = 0.0
        return {"rolled_back": True}

    @agent.action("restart")
    def restart(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        with state.lock:
            state.error_rate = 0.0
            state.restarts += 1
            return {"restarted": True, "restarts": state.restarts}

    @agent.action("clear_cache")
    def clear_cache(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        return {"cleared_entries": 0}

    def on_health(status: HealthStatus) -> None:
        with state.lock:
            state.last_status = status
            state.callbacks += 1

    agent.set_health_callback(on_health)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path == "/" and method == "GET":
            if random.random() < state.error_rate:
                error = RuntimeError("backend unavailable")
                agent.report_error(error)
                return json_answer(
                    start_response, "500 Internal Server Error", {"error": str(error)}
                )
            return json_answer(start_response, "200 OK", {"hello": "world"})
        if path == "/chaos" and method == "POST":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            with state.lock:
                state.error_rate = float(query.get("error_rate", ["0"])[0])
            return json_answer(start_response, "200 OK", {"error_rate": state.error_rate})
        if path == "/status":
            last = state.last_status
            return json_answer(
                start_response,
                "200 OK",
                {
                    "callbacks": state.callbacks,
                    "healthy": last.healthy if last else None,
                    "agent_reachable": last.agent_reachable if last else False,
                    "agent": None
                    if last is None or last.agent is None
                    else {"status": last.agent.status, "healthy": last.agent.healthy},
                },
            )
        return json_answer(start_response, "404 Not Found", {"error": "not found"})

    return agent, SelfHealingWSGI(app, agent=agent)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the agent's URL and the secret may also come from the env)."""
    parser = argparse.ArgumentParser(description="A stdlib WSGI service healed by selfheal.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6002)
    parser.add_argument(
        "--agent-url", default=os.environ.get("SELFHEAL_AGENT_URL", "http://127.0.0.1:5000")
    )
    parser.add_argument("--service-id", default="hello-wsgi")
    parser.add_argument("--user-id", default="team-a")
    parser.add_argument("--secret", default=os.environ.get("SERVICE_SECRET", "s3cret"))
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument("--heartbeat-timeout", type=float, help="default: 2 intervals")
    parser.add_argument("--poll-interval", type=float, help="how often the agent probes /health")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Register, serve, heartbeat; SIGTERM or Ctrl-C stops it cleanly."""
    args = parse_args(argv)
    agent, application = build(args)
    server = make_server(
        args.host, args.port, application, server_class=ThreadingServer, handler_class=QuietHandler
    )
    base = f"http://{args.host}:{server.server_port}"
    result = agent.register(
        name="Hello (WSGI)",
        health_url=f"{base}/health",
        webhook_url=f"{base}/webhook",
        metadata={"framework": "wsgiref"},
        interval=args.poll_interval,
        heartbeat_timeout=args.heartbeat_timeout,
    )
    print(f"{args.service_id}: listening on {base}; registered={result.ok}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with agent:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


if __name__ == "__main__":
    main()
