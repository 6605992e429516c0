"""The guard rails operators change while the agent runs: kill switch, silences, approvals.

Stored in the database (they survive restarts), held in memory (the heal loop
checks them without a query), and every change wakes the heal loops that are
holding, so a resume, an approval or a lifted silence takes effect at once.

On a cluster every change is also told to the other replicas (``publish``, set
by ``cluster/shared.py``, through PostgreSQL NOTIFY): pauses and silences make
them re-read both from the database (``reload``); approvals travel as messages
(``apply_remote``), since the heal loop waiting for one may run on any replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from selfheal.configfile import SilenceConfig
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import controls as repo
from selfheal.storage.tables import Silence
from selfheal.types import DEFAULT_TENANT

EVERY_SERVICE = repo.EVERY_SERVICE


@dataclass(frozen=True, slots=True)
class PauseView:
    """One pause of automation."""

    tenant_id: str
    service_id: str  # "*" for every service
    paused_by: str
    reason: str
    paused_at: datetime


@dataclass(frozen=True, slots=True)
class SilenceView:
    """One silence, as the rules read it."""

    id: int
    tenant_id: str
    service_id: str | None
    tags: tuple[str, ...]
    starts_at: datetime
    ends_at: datetime
    comment: str
    created_by: str
    source: str

    def matches(self, spec: ServiceSpec, now: datetime) -> bool:
        """Active now, and the service matches every given matcher."""
        if spec.tenant_id != self.tenant_id or not (self.starts_at <= now < self.ends_at):
            return False
        if self.service_id is not None and self.service_id != spec.service_id:
            return False
        return all(tag in spec.tags for tag in self.tags)

    def as_dict(self) -> dict[str, Any]:
        """The public shape."""
        return {
            "id": self.id,
            "matchers": {"service_id": self.service_id, "tags": list(self.tags)},
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "comment": self.comment,
            "created_by": self.created_by,
            "source": self.source,
        }

    @classmethod
    def of(cls, row: Silence) -> SilenceView:
        """From a stored row."""
        return cls(
            id=row.id,
            tenant_id=row.tenant_id,
            service_id=row.service_id,
            tags=tuple(row.tags or ()),
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            comment=row.comment,
            created_by=row.created_by,
            source=row.source,
        )


class Controls:
    """In-memory guard-rail state backed by the database."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pauses: dict[tuple[str, str], PauseView] = {}
        self._silences: dict[int, SilenceView] = {}
        self._approvals: dict[int, str] = {}
        self._awaiting: dict[int, str] = {}
        self._changed = asyncio.Event()
        # a re-read and a local change never interleave (the re-read could drop the change)
        self._mutex = asyncio.Lock()
        # tells the other replicas of a change (cluster only; never blocks)
        self.publish: Callable[[dict[str, Any]], None] | None = None

    def _tell(self, message: dict[str, Any]) -> None:
        if self.publish is not None:
            self.publish(message)

    async def load(self, config_silences: list[SilenceConfig]) -> None:
        """Read pauses and silences; the config file's silences replace earlier config ones."""
        now = datetime.now(UTC)
        async with self._db.session() as session:
            await repo.delete_config_silences(session=session)
            for silence in config_silences:
                await repo.add_silence(
                    session=session,
                    tenant_id=silence.tenant or DEFAULT_TENANT,
                    service_id=silence.matchers.service_id,
                    tags=silence.matchers.tags,
                    starts_at=silence.starts_at or now,
                    ends_at=silence.ends_at,
                    comment=silence.comment,
                    created_by="config",
                    source="config",
                )
        await self.reload()

    async def reload(self) -> None:
        """Re-read pauses and silences (another replica changed them), and wake the loops."""
        async with self._mutex:
            await self._reread()
        self._notify()

    async def _reread(self) -> None:
        now = datetime.now(UTC)
        async with self._db.session() as session:
            pauses = await repo.all_pauses(session=session)
            silences = await repo.current_silences(session=session, now=now)
        self._pauses = {
            (p.tenant_id, p.service_id): PauseView(
                p.tenant_id, p.service_id, p.paused_by, p.reason, p.paused_at
            )
            for p in pauses
        }
        self._silences = {s.id: SilenceView.of(s) for s in silences}

    def apply_remote(self, message: dict[str, Any]) -> None:
        """An approval change told by another replica."""
        kind, incident_id = message.get("k"), int(message.get("i", 0))
        if kind == "awaiting":
            self._awaiting[incident_id] = str(message.get("a", ""))
        elif kind == "approved":
            self._approvals[incident_id] = str(message.get("by", ""))
            self._notify()
        elif kind == "forget":
            self._approvals.pop(incident_id, None)
            self._awaiting.pop(incident_id, None)

    # -- waiting ------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, timeout: float) -> None:
        """Return on the next change of any control, or after ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # -- kill switch --------------------------------------------------------------------

    def paused(self, spec: ServiceSpec) -> PauseView | None:
        """The pause that stops automation for this service, if any."""
        return self._pauses.get((spec.tenant_id, EVERY_SERVICE)) or self._pauses.get(
            (spec.tenant_id, spec.service_id)
        )

    def pauses(self, tenant_id: str) -> list[PauseView]:
        """A tenant's pauses."""
        return [p for (tenant, _), p in self._pauses.items() if tenant == tenant_id]

    async def pause(self, tenant_id: str, service_id: str | None, by: str, reason: str) -> None:
        """Stop every action (detection goes on) for a tenant or one service."""
        target = service_id or EVERY_SERVICE
        async with self._mutex:
            async with self._db.session() as session:
                await repo.pause(
                    session=session,
                    tenant_id=tenant_id,
                    service_id=target,
                    paused_by=by,
                    reason=reason,
                )
            self._pauses.setdefault(
                (tenant_id, target), PauseView(tenant_id, target, by, reason, datetime.now(UTC))
            )
        self._notify()
        self._tell({"k": "controls"})

    async def resume(self, tenant_id: str, service_id: str | None) -> bool:
        """Lift a pause; False if there was none."""
        target = service_id or EVERY_SERVICE
        async with self._mutex:
            async with self._db.session() as session:
                existed = await repo.resume(session=session, tenant_id=tenant_id, service_id=target)
            self._pauses.pop((tenant_id, target), None)
        self._notify()
        self._tell({"k": "controls"})
        return existed

    # -- silences -----------------------------------------------------------------------

    def silence_for(self, spec: ServiceSpec, now: datetime | None = None) -> SilenceView | None:
        """The first active silence covering this service."""
        moment = now or datetime.now(UTC)
        for silence in self._silences.values():
            if silence.matches(spec, moment):
                return silence
        return None

    def silences(self, tenant_id: str) -> list[SilenceView]:
        """A tenant's silences that have not ended."""
        now = datetime.now(UTC)
        return [s for s in self._silences.values() if s.tenant_id == tenant_id and s.ends_at > now]

    async def add_silence(
        self,
        tenant_id: str,
        *,
        service_id: str | None,
        tags: list[str],
        starts_at: datetime,
        ends_at: datetime,
        comment: str,
        by: str,
    ) -> SilenceView:
        """Create a silence or maintenance window."""
        async with self._mutex:
            async with self._db.session() as session:
                row = await repo.add_silence(
                    session=session,
                    tenant_id=tenant_id,
                    service_id=service_id,
                    tags=tags,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    comment=comment,
                    created_by=by,
                )
            view = SilenceView.of(row)
            self._silences[view.id] = view
        self._notify()
        self._tell({"k": "controls"})
        return view

    async def delete_silence(self, tenant_id: str, silence_id: int) -> bool:
        """End a silence now."""
        async with self._mutex:
            async with self._db.session() as session:
                deleted = await repo.delete_silence(
                    session=session, tenant_id=tenant_id, silence_id=silence_id
                )
            if deleted:
                self._silences.pop(silence_id, None)
        if deleted:
            self._notify()
            self._tell({"k": "controls"})
        return deleted

    # -- approvals ----------------------------------------------------------------------

    def await_approval(self, incident_id: int, action: str) -> None:
        """A heal loop now holds ``action`` until someone approves it."""
        self._awaiting[incident_id] = action
        self._tell({"k": "awaiting", "i": incident_id, "a": action})

    def awaiting(self, incident_id: int) -> str | None:
        """The action an incident holds for approval, if any."""
        return self._awaiting.get(incident_id)

    def approve(self, incident_id: int, by: str) -> str | None:
        """Release the held action; returns it, or None if nothing was held."""
        action = self._awaiting.get(incident_id)
        if action is not None:
            self._approvals[incident_id] = by
            self._notify()
            self._tell({"k": "approved", "i": incident_id, "by": by})
        return action

    def approved_by(self, incident_id: int) -> str | None:
        """Who approved this incident's held action, if anyone."""
        return self._approvals.get(incident_id)

    def forget_approval(self, incident_id: int) -> None:
        """An approval covers one action; also stop waiting."""
        self._approvals.pop(incident_id, None)
        if self._awaiting.pop(incident_id, None) is not None:
            self._tell({"k": "forget", "i": incident_id})
