"""Changes to the fleet, told to every replica through PostgreSQL LISTEN/NOTIFY.

A replica that registers, changes or deletes a service sends
``NOTIFY selfheal_fleet`` with the service's key after its transaction committed;
every other replica LISTENs on one dedicated asyncpg connection (outside the
pool: a listening connection cannot be lent out) and re-reads that service.
NOTIFY is not stored: a replica whose listening connection broke misses what
was sent meanwhile, so it reconciles the whole fleet after each reconnect, and
a periodic reconcile (``FleetSync``) catches anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; used on one connection
from sqlalchemy import text
from sqlalchemy.engine import make_url

from selfheal.errors import StorageError
from selfheal.logging import get_logger
from selfheal.storage.db import Database
from selfheal.types import ServiceKey

log = get_logger(__name__)

CHANNEL = "selfheal_fleet"
PING_INTERVAL = 5.0  # a black-holed listening connection is noticed within this (plus timeout)
RECONNECT_DELAY = 1.0

Refresh = Callable[[ServiceKey], Awaitable[None]]
Reconcile = Callable[[], Awaitable[object]]
Handler = Callable[[dict[str, Any]], None]


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def announce(db: Database, key: ServiceKey, *, origin: str) -> None:
    """Tell the other replicas that ``key`` changed (after the change committed)."""
    payload = json.dumps({"t": key.tenant_id, "s": key.service_id, "o": origin})
    try:
        async with db.session() as session:
            await session.execute(
                text("SELECT pg_notify(:channel, :payload)"),
                {"channel": CHANNEL, "payload": payload},
            )
    except StorageError as exc:
        # the others' periodic reconcile picks the change up
        log.warning("cluster_notify_failed", service_id=key.service_id, error=exc.message)


class FleetListener:
    """Listens for fleet changes from the other replicas and applies them in order."""

    def __init__(
        self,
        db: Database,
        *,
        me: str,
        refresh: Refresh,
        reconcile: Reconcile,
    ) -> None:
        self._db = db
        self._me = me
        self._refresh = refresh
        self._reconcile = reconcile
        self._pending: dict[ServiceKey, None] = {}  # ordered, deduplicated
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.received = 0
        # other channels (shared state, live feed): JSON payloads with the sender in "o"
        self._handlers: dict[str, Handler] = {}

    def on(self, channel: str, handler: Handler) -> None:
        """Also listen on ``channel`` (before ``listen`` starts); own messages are skipped."""
        self._handlers[channel] = handler

    def _on_other(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            log.warning("cluster_notify_malformed", channel=channel)
            return
        if not isinstance(data, dict) or data.get("o") == self._me:
            return
        try:
            self._handlers[channel](data)
        except Exception:
            log.exception("cluster_notify_handler_failed", channel=channel)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
            key = ServiceKey(str(data["t"]), str(data["s"]))
        except (ValueError, KeyError, TypeError):
            log.warning("cluster_notify_malformed")
            return
        if data.get("o") == self._me:
            return  # our own change, already applied
        self.received += 1
        self._pending[key] = None
        self._wake.set()

    async def listen(self) -> None:
        """Keep one listening connection open, reconnecting (and reconciling) after a break."""
        dsn = asyncpg_dsn(self._db.url)
        timeout = self._db.timeouts.connect
        first = True
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(dsn, timeout=timeout)
                closed = asyncio.Event()
                conn.add_termination_listener(_setter(closed))
                await conn.add_listener(CHANNEL, self._on_notify)
                for channel in self._handlers:
                    await conn.add_listener(channel, self._on_other)
                self.connected.set()
                if not first:
                    log.info("cluster_listener_reconnected")
                    await self._reconcile()
                first = False
                while True:
                    # a closed connection ends the wait at once; a silent one, at the ping
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), PING_INTERVAL)
                    await conn.fetchval("SELECT 1", timeout=timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cluster_listener_broken", error=type(exc).__name__)
                self.connected.clear()
            finally:
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(RECONNECT_DELAY)

    async def apply(self) -> None:
        """Re-read each changed service, oldest first; retried while the database is away."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                # taken off before the read: a change announced during it is read again
                key = next(iter(self._pending))
                del self._pending[key]
                try:
                    await self._refresh(key)
                except StorageError as exc:
                    log.warning(
                        "cluster_refresh_delayed", service_id=key.service_id, error=exc.message
                    )
                    self._pending[key] = None
                    await asyncio.sleep(RECONNECT_DELAY)


def _setter(event: asyncio.Event) -> Callable[[Any], None]:
    """A callback that sets ``event`` (asyncpg passes the closed connection)."""
    return lambda _conn: event.set()
