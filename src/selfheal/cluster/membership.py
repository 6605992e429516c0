"""Membership: each replica's row in ``cluster_members``, kept fresh by heartbeats.

A replica is live while its ``heartbeat_at`` is less than ``lease`` seconds old.
Both the write (``heartbeat_at = clock_timestamp()``) and the comparison are done
by PostgreSQL with its own clock, so clock skew between the replicas' machines
does not matter: no replica's wall clock is ever written or compared.

Fencing basics. A replica measures its own lease on its monotonic clock from the
moment it *sent* its last successful heartbeat: the database stamped that
heartbeat later than that moment, so the replica's own expiry comes no later
than the moment the others can see it expire. When it expires (the database
unreachable or too slow for ``lease`` seconds) the replica's view becomes
"nobody" and it stops probing every service before another replica can have
taken them over. It joins again with its next successful heartbeat.

One exception keeps a single agent what it always was: a replica whose last
view held no other member keeps its view (itself) through an outage, as
there was nobody to hand its services to.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import text

from selfheal.errors import StorageError
from selfheal.logging import get_logger
from selfheal.storage.db import Database

log = get_logger(__name__)

LEASE = 2.0  # seconds a heartbeat keeps a member live
BEAT = 0.4  # seconds between heartbeats (each one also reads the live members)
FENCE_MARGIN = 0.1  # a replica gives its lease up this fraction early (clock rates differ)
FORGET_AFTER = 3600.0  # rows of members dead this long are deleted

# the fencing token: a fresh one (microseconds on the database clock) whenever the row is
# new or had expired, i.e. whenever the others may have taken this member's work over
_JOIN = text(
    "INSERT INTO cluster_members (id, host, pid, started_at, heartbeat_at, token) "
    "VALUES (:id, :host, :pid, clock_timestamp(), clock_timestamp(), "
    "CAST(extract(epoch FROM clock_timestamp()) * 1000000 AS bigint)) "
    "ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp(), token = CASE "
    "WHEN cluster_members.heartbeat_at > "
    "clock_timestamp() - CAST(:lease AS float8) * interval '1 second' "
    "THEN cluster_members.token ELSE EXCLUDED.token END "
    "RETURNING token"
)
_LIVE = text(
    "SELECT id FROM cluster_members "
    "WHERE heartbeat_at > clock_timestamp() - CAST(:lease AS float8) * interval '1 second' "
    "ORDER BY id"
)
_FORGET = text(
    "DELETE FROM cluster_members "
    "WHERE heartbeat_at < clock_timestamp() - CAST(:age AS float8) * interval '1 second'"
)
_LEAVE = text("DELETE FROM cluster_members WHERE id = :id")

OnView = Callable[[Sequence[str]], None]


class Membership:
    """Joins, heartbeats, reads the live members, and leaves."""

    def __init__(
        self,
        db: Database,
        *,
        on_view: OnView,
        lease: float = LEASE,
        beat: float = BEAT,
        clock: Callable[[], float] = time.monotonic,
        member_id: str | None = None,
    ) -> None:
        if beat >= lease:
            raise ValueError("the heartbeat period must be shorter than the lease")
        self.id = member_id or uuid.uuid4().hex
        self.lease = lease
        self.beat = beat
        self._db = db
        self._on_view = on_view
        self._clock = clock
        self._valid_until = float("-inf")
        self.view: tuple[str, ...] = (self.id,)
        self.fenced = False
        self.token = 0  # the fencing token of the current lease (0: never joined)

    def holds_lease(self) -> bool:
        """True while this replica's last heartbeat is surely still seen as live."""
        return self._clock() < self._valid_until

    def may_act(self) -> bool:
        """True unless fenced: the lease holds, or this replica is alone (a single agent)."""
        if self.holds_lease():
            return True
        return not self.fenced and self.view == (self.id,)

    async def heartbeat(self) -> tuple[str, ...]:
        """Write one heartbeat and read the live members (``StorageError`` if unreachable)."""
        params = {
            "id": self.id,
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "lease": self.lease,
        }
        async with self._db.session() as session:
            token = int((await session.execute(_JOIN, params)).scalar_one())
            result = await session.execute(_LIVE, {"lease": self.lease})
            live = tuple(result.scalars().all())
        if token != self.token:
            if self.token:
                log.warning("cluster_token_renewed", member=self.id)
            self.token = token
        return live

    async def tick(self) -> None:
        """One heartbeat round: renew the lease and the view, or fence when it ran out."""
        sent = self._clock()
        # never wait past the lease: fencing must happen on time even if the call hangs
        left = self._valid_until - sent
        budget = left if left > 0 else self.beat
        try:
            live = await self._heartbeat_within(min(budget, self.lease))
        except Exception as exc:
            if not isinstance(exc, StorageError | TimeoutError):
                log.exception("cluster_heartbeat_error", member=self.id)
            if self.holds_lease() or self.fenced:
                return
            if self.view == (self.id,):
                return  # alone: nobody can take over, keep working as a single agent does
            log.warning("cluster_lease_lost", member=self.id, error=str(exc) or "timeout")
            self.fenced = True
            self._set_view(())
            return
        self._valid_until = sent + self.lease * (1 - FENCE_MARGIN)
        if self.fenced:
            log.info("cluster_rejoined", member=self.id)
            self.fenced = False
        # our own row was just written, so we are in the list unless the read raced a purge
        self._set_view(live if self.id in live else (*live, self.id))

    async def _heartbeat_within(self, timeout: float) -> tuple[str, ...]:
        """``heartbeat()``, or TimeoutError after ``timeout`` without waiting for the
        cancelled call to unwind: on a black-holed socket that can take as long as the
        database timeouts, and fencing must not wait for it."""
        call = asyncio.ensure_future(self.heartbeat())
        done, _ = await asyncio.wait({call}, timeout=timeout)
        if not done:
            call.cancel()
            call.add_done_callback(_consume)
            raise TimeoutError
        return call.result()

    async def run(self) -> None:
        """Heartbeat forever; every so often delete the rows of long-dead members."""
        last_purge = self._clock()
        while True:
            await self.tick()
            if self._clock() - last_purge > FORGET_AFTER / 10 and not self.fenced:
                last_purge = self._clock()
                try:
                    async with self._db.session() as session:
                        await session.execute(_FORGET, {"age": FORGET_AFTER})
                except StorageError:
                    pass  # the next round tries again
            # a failing heartbeat is retried up to the lease's end, so fencing is on time
            left = self._valid_until - self._clock()
            await asyncio.sleep(min(self.beat, left) if left > 0 else self.beat)

    async def leave(self) -> None:
        """Delete this replica's row, so the others take its services over at once."""
        try:
            async with self._db.session() as session:
                await session.execute(_LEAVE, {"id": self.id})
        except StorageError as exc:
            log.warning("cluster_leave_failed", member=self.id, error=exc.message)

    def _set_view(self, members: Sequence[str]) -> None:
        view = tuple(sorted(members))
        if view != self.view:
            log.info("cluster_view_changed", member=self.id, members=len(view))
            self.view = view
            self._on_view(view)


def _consume(call: asyncio.Future[tuple[str, ...]]) -> None:
    """Retrieve a given-up heartbeat's outcome, so asyncio does not report it as lost."""
    if not call.cancelled():
        call.exception()
