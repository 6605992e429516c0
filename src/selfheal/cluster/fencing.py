"""Fencing: one heal loop per incident across the cluster, and no late action writes.

A heal loop first *claims* its incident: ``incidents.healer`` becomes this
replica's member id and ``healer_token`` its current fencing token. The claim
succeeds only if nobody holds it or its holder is no longer live (its
membership row expired on the database clock, or was deleted), and only while
this replica's own row is live with that token: a compare-and-set, so two
replicas never both hold one incident.

The action row is then written in a transaction that first locks the incident
row and checks, on the database clock, that the claim is still this replica's
under the same token and that the replica's row is live with it
(``confirm``). A replica whose lease lapsed (and whose row the others saw
expire, giving it a new token when it rejoined) is refused there, however late
its write arrives; a claim taken over meanwhile waits on the row lock and then
sees the action. The action row keeps the member id and token it was started
under.

On SQLite, or with the cluster off, ``Fence`` is inert: every service is owned,
every claim succeeds, nothing is checked (one process cannot race itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.cluster.membership import Membership
from selfheal.logging import get_logger
from selfheal.storage.db import Database
from selfheal.types import ServiceKey

log = get_logger(__name__)

# "live": a heartbeat newer than the lease, on the database clock
_CLAIM = text(
    "UPDATE incidents SET healer = :me, healer_token = :token "
    "WHERE id = :incident AND tenant_id = :tenant AND resolved_at IS NULL "
    "AND (healer IS NULL OR healer = :me OR NOT EXISTS (SELECT 1 FROM cluster_members h "
    "WHERE h.id = incidents.healer "
    "AND h.heartbeat_at > clock_timestamp() - CAST(:lease AS float8) * interval '1 second')) "
    "AND EXISTS (SELECT 1 FROM cluster_members m WHERE m.id = :me AND m.token = :token "
    "AND m.heartbeat_at > clock_timestamp() - CAST(:lease AS float8) * interval '1 second') "
    "RETURNING id"
)
_RELEASE = text(
    "UPDATE incidents SET healer = NULL, healer_token = NULL "
    "WHERE id = :incident AND tenant_id = :tenant AND healer = :me AND healer_token = :token"
)
_CONFIRM = text(
    "SELECT id FROM incidents "
    "WHERE id = :incident AND tenant_id = :tenant AND healer = :me AND healer_token = :token "
    "AND EXISTS (SELECT 1 FROM cluster_members m WHERE m.id = :me AND m.token = :token "
    "AND m.heartbeat_at > clock_timestamp() - CAST(:lease AS float8) * interval '1 second') "
    "FOR UPDATE"
)
# unresolved incidents no live replica's heal loop holds: released, or left by the dead
_ORPHANS = text(
    "SELECT id, tenant_id, service_id FROM incidents "
    "WHERE resolved_at IS NULL AND status <> 'escalated' "
    "AND (healer IS NULL OR NOT EXISTS (SELECT 1 FROM cluster_members h "
    "WHERE h.id = incidents.healer "
    "AND h.heartbeat_at > clock_timestamp() - CAST(:lease AS float8) * interval '1 second')) "
    "ORDER BY id LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class Lease:
    """Under what an action is started: the member and its fencing token (None: no cluster)."""

    member_id: str | None
    token: int | None


SINGLE = Lease(None, None)


class Fence:
    """The cluster as the heal loops and the action runner see it."""

    def __init__(
        self,
        db: Database,
        membership: Membership | None,
        owns: Callable[[ServiceKey], bool] | None = None,
    ) -> None:
        self._db = db
        self._membership = membership
        self._owns = owns

    @property
    def enabled(self) -> bool:
        """True when there is a cluster to fence against (PostgreSQL)."""
        return self._membership is not None

    def owns(self, key: ServiceKey) -> bool:
        """True if this replica should run the heal loops of ``key``'s incidents."""
        return self._owns is None or self._owns(key)

    def may_act(self) -> bool:
        """False while this replica's lease has lapsed (an action must not start)."""
        return self._membership is None or self._membership.may_act()

    def _params(self, tenant_id: str, incident_id: int, lease: Lease) -> dict[str, object]:
        assert self._membership is not None
        return {
            "me": lease.member_id,
            "token": lease.token,
            "tenant": tenant_id,
            "incident": incident_id,
            "lease": self._membership.lease,
        }

    async def claim(self, tenant_id: str, incident_id: int) -> Lease | None:
        """Take the incident's heal loop for this replica; None if a live replica holds it."""
        if self._membership is None:
            return SINGLE
        lease = Lease(self._membership.id, self._membership.token)
        async with self._db.session() as session:
            got = await session.scalar(_CLAIM, self._params(tenant_id, incident_id, lease))
        return lease if got is not None else None

    async def release(self, tenant_id: str, incident_id: int, lease: Lease) -> None:
        """Give the incident up (its service moved to another replica)."""
        if self._membership is None or lease.member_id is None:
            return
        async with self._db.session() as session:
            await session.execute(_RELEASE, self._params(tenant_id, incident_id, lease))

    async def confirm(
        self, session: AsyncSession, tenant_id: str, incident_id: int, lease: Lease
    ) -> bool:
        """In the action's transaction: the claim and the lease still hold (row locked)."""
        if self._membership is None or lease.member_id is None:
            return True
        found = await session.scalar(_CONFIRM, self._params(tenant_id, incident_id, lease))
        return found is not None

    async def orphans(self, limit: int = 5000) -> list[tuple[int, ServiceKey]]:
        """Unresolved incidents of this replica's services that no live heal loop holds."""
        if self._membership is None:
            return []
        params = {"lease": self._membership.lease, "limit": limit}
        async with self._db.session() as session:
            rows = (await session.execute(_ORPHANS, params)).all()
        found = [(int(r[0]), ServiceKey(str(r[1]), str(r[2]))) for r in rows]
        return [(incident_id, key) for incident_id, key in found if self.owns(key)]
