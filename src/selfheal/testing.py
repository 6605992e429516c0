"""Public test helpers: a real loopback service that fails on cue, and the agent on a port.

Plugin authors and our own tests use the same pieces: ``FakeService`` is a
real aiohttp server on 127.0.0.1 whose health endpoint breaks in the ways the
contract knows (HTTP 500, no answer, bad figures) and whose webhook verifies
the agent's signatures with the SDK before "fixing" itself, and signs its
answers as the SDK does; ``AgentServer``
runs ``create_app`` under uvicorn on a free loopback port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

import uvicorn
from aiohttp import web
from sqlalchemy import func, insert, select, text

from self_healing_sdk.signing import ReplayGuard, SignatureError, sign, verify
from selfheal.api.app import create_app
from selfheal.config import Settings
from selfheal.configfile import FileConfig
from selfheal.plugins import Plugins
from selfheal.runtime.agent import Agent
from selfheal.storage.db import Database
from selfheal.storage.repositories import tenants as tenants_repo
from selfheal.storage.tables import Action, Incident
from selfheal.types import DEFAULT_TENANT

HEALTHY: dict[str, Any] = {"status": "ok", "cpu": 10.0, "memory": 40.0, "error_rate": 0.0}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WebhookCall:
    """One delivery the fake service received on its webhook."""

    at: float
    accepted: bool
    reason: str | None
    body: dict[str, Any] | None
    headers: dict[str, str]


@dataclass
class Concurrency:
    """Counts webhook calls in flight across fake services; keeps the maximum seen."""

    now: int = 0
    peak: int = 0

    def enter(self) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)

    def leave(self) -> None:
        self.now -= 1


@dataclass
class FakeService:
    """A loopback HTTP service. Set ``mode`` to break it; a verified webhook heals it.

    Modes: ``ok``, ``http_500``, ``hang`` (never answers), ``figures`` (answers
    200 with ``figures`` merged into the health JSON), ``down`` (port closed).
    """

    service_id: str = "fake"
    secret: str = "fake-secret-123"  # noqa: S105 - a test fixture
    port: int = 0
    mode: str = "ok"
    figures: dict[str, Any] = field(default_factory=dict)
    heals: bool = True  # whether a verified action fixes it
    fixed_by: tuple[str, ...] = ()  # when set, only these actions fix it
    action_delay: float = 0.0  # how long the webhook takes to answer
    action_status: int = 200
    start_seconds: float = 0.0  # a verified restart leaves it answering 503 this long
    concurrency: Concurrency | None = None
    calls: list[WebhookCall] = field(default_factory=list)
    probes: int = 0
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None
    _replays: ReplayGuard = field(default_factory=ReplayGuard)
    _hung: list[asyncio.Future[None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # known before start, so a config can name the service's URLs up front
        self.port = self.port or free_port()

    @property
    def url(self) -> str:
        """Base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        """The health endpoint."""
        return f"{self.url}/health"

    @property
    def webhook_url(self) -> str:
        """The webhook endpoint."""
        return f"{self.url}/webhook"

    @property
    def accepted_calls(self) -> list[WebhookCall]:
        """Deliveries whose signature verified."""
        return [c for c in self.calls if c.accepted]

    def break_as(self, mode: str, **figures: Any) -> None:
        """Start failing in the given way."""
        self.mode = mode
        self.figures = figures

    def heal(self) -> None:
        """Back to healthy."""
        self.mode = "ok"
        self.figures = {}
        for waiter in self._hung:
            if not waiter.done():
                waiter.set_result(None)
        self._hung.clear()

    async def _health(self, _request: web.Request) -> web.StreamResponse:
        self.probes += 1
        if self.mode == "http_500":
            return web.json_response({"status": "down"}, status=500)
        if self.mode == "hang":
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._hung.append(waiter)
            await waiter
        return web.json_response(HEALTHY | self.figures)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        headers = dict(request.headers)
        try:
            verify(
                self.secret,
                request.headers,
                raw,
                service_id=self.service_id,
                replay_guard=self._replays,
            )
        except SignatureError as exc:
            self.calls.append(WebhookCall(time.time(), False, exc.reason, None, headers))
            return self._answer({"error": exc.reason, "detail": exc.reason}, 401)
        body = json.loads(raw)
        self.calls.append(WebhookCall(time.time(), True, None, body, headers))
        if self.concurrency is not None:
            self.concurrency.enter()
        try:
            if self.action_delay:
                await asyncio.sleep(self.action_delay)
        finally:
            if self.concurrency is not None:
                self.concurrency.leave()
        fixes = not self.fixed_by or body.get("action") in self.fixed_by
        if self.heals and fixes and 200 <= self.action_status < 300:
            self.heal()
            if self.start_seconds and body.get("action") == "restart":
                self.break_as("http_500")
                asyncio.get_running_loop().call_later(self.start_seconds, self.heal)
        done = {"done": body.get("action"), "action_id": body.get("action_id")}
        return self._answer(done | {"detail": f"{body.get('action')} done"}, self.action_status)

    def _answer(self, body: dict[str, Any], status: int) -> web.Response:
        """A JSON answer signed with the service's secret, as the SDK signs its answers."""
        raw = json.dumps(body).encode()
        headers = sign(self.secret, self.service_id, raw)
        return web.Response(
            body=raw, status=status, headers=headers, content_type="application/json"
        )

    async def start(self) -> FakeService:
        """Listen on 127.0.0.1 (a free port unless ``port`` is set)."""
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_post("/webhook", self._webhook)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        return self

    async def stop(self) -> None:
        """Close the port (the service is then down: connection refused)."""
        self.heal()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeService:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class AgentServer:
    """The agent with its API under uvicorn on a loopback port, inside the current loop."""

    def __init__(
        self,
        settings: Settings,
        file_config: FileConfig | None = None,
        plugins: Plugins | None = None,
    ) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"HOST": "127.0.0.1", "PORT": self.port})
        self.agent = Agent(self.settings, file_config=file_config, plugins=plugins)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> AgentServer:
        app = create_app(self.settings, agent=self.agent)
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        # uvicorn would take over SIGINT/SIGTERM; the test runner owns them
        self._server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        await self.agent.start()
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._task.done() or time.monotonic() > deadline:
                await self.agent.stop()
                raise RuntimeError("the agent's HTTP server did not start")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
        await self.agent.stop()


SEED_TYPES = ("unreachable", "timeout", "http_error", "high_latency", "high_memory", "high_cpu")


async def _insert(conn: Any, table: Any, rows: list[dict[str, Any]], *, sqlite: bool) -> None:
    if sqlite:
        await conn.execute(insert(table), rows)  # executemany: SQLite's fastest bulk path
        return
    # PostgreSQL: one INSERT ... SELECT FROM unnest(arrays), since the summaries trigger
    # (migration 0010) runs once per statement; a multi-row VALUES takes longer to
    # compile than to run
    names = list(rows[0])
    dialect = conn.dialect
    arrays = ", ".join(f"CAST(:c{i} AS text[])" for i in range(len(names)))
    casts = ", ".join(
        f"CAST(c{i} AS {table.c[name].type.compile(dialect=dialect)})"
        for i, name in enumerate(names)
    )
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    statement = text(
        f"INSERT INTO {table.name} ({', '.join(names)}) "  # noqa: S608 - the table's own names
        f"SELECT {casts} FROM unnest({arrays}) AS u ({aliases})"
    )

    def as_text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, dict | list):
            return json.dumps(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return str(value)

    await conn.execute(
        statement, {f"c{i}": [as_text(row[name]) for row in rows] for i, name in enumerate(names)}
    )


async def seed_history(
    db: Database,
    *,
    tenant_id: str = DEFAULT_TENANT,
    service_ids: Sequence[str],
    incidents: int,
    open_incidents: int = 200,
    actions: int = 0,
    chunk: int = 2000,
) -> None:
    """Store a long history fast (bulk INSERTs, not the ORM one row at a time).

    ``incidents`` incidents spread over ``service_ids``, the newest
    ``open_incidents`` of them escalated (one per service and type, as the
    partial unique index wants), and ``actions`` verified action runs. Only
    incidents and actions are written: the agent does not probe these services.
    """
    # one incident a minute up to now: the dashboard's ranges all hold some
    start = datetime.now(UTC) - timedelta(minutes=incidents + 1)
    first_open = incidents - open_incidents
    rows: list[dict[str, Any]] = []
    for i in range(incidents):
        service = service_ids[i % len(service_ids)]
        kind = SEED_TYPES[(i // len(service_ids)) % len(SEED_TYPES)]
        opened = start + timedelta(seconds=60 * i)
        active = i >= first_open
        rows.append(
            {
                "tenant_id": tenant_id,
                "service_id": service,
                "type": kind,
                "fingerprint": f"{service}:{kind}",
                "severity": "medium",
                # escalated: waiting for a person, so no heal loop picks them up
                "status": "escalated" if active else "resolved",
                "summary": f"{service} {kind}",
                "details": {},
                "opened_at": opened,
                "updated_at": opened,
                "resolved_at": None if active else opened + timedelta(seconds=30 + i % 90),
            }
        )
    async with db.session() as session:
        await tenants_repo.ensure_tenant(session=session, tenant_id=tenant_id)
    async with db.engine.begin() as conn:
        for at in range(0, len(rows), chunk):
            await _insert(conn, Incident.__table__, rows[at : at + chunk], sqlite=db.is_sqlite)
        first = (await conn.execute(select(func.min(Incident.id)))).scalar_one()
        step = max(1, incidents // actions) if actions else 0
        runs: list[dict[str, Any]] = [
            {
                "tenant_id": tenant_id,
                "incident_id": first + n * step,
                "service_id": service_ids[(n * step) % len(service_ids)],
                "incident_type": "timeout",
                "action": ("restart", "clear_cache", "scale_up")[n % 3],
                "executor": "webhook",
                "params": {},
                "idempotency_key": f"seed-{n}",
                "status": "succeeded",
                "decision": {},
                "started_at": start,
                "result": {},
                "outcome": "recovered" if n % 4 else "not_recovered",
                "recovery_seconds": 12.0,
            }
            for n in range(actions)
        ]
        for at in range(0, len(runs), chunk):
            await _insert(conn, Action.__table__, runs[at : at + chunk], sqlite=db.is_sqlite)
