"""Status history and minute rollups, written in batches off the probe path."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from selfheal.checks.rollup import RollupBuffer
from selfheal.detectors.monitor import StatusChanged
from selfheal.errors import StorageError
from selfheal.storage.db import Database
from selfheal.storage.repositories import samples as samples_repo
from selfheal.storage.repositories import services as services_repo

FLUSH_INTERVAL = 5.0


class HistoryWriter:
    """Buffers status changes; ``flush`` writes them with the finished rollups."""

    def __init__(self, db: Database, rollups: RollupBuffer) -> None:
        self._db = db
        self._rollups = rollups
        self._status_rows: list[dict[str, Any]] = []

    def status_changed(self, signal: StatusChanged) -> None:
        spec, sample = signal.spec, signal.sample
        self._status_rows.append(
            {
                "tenant_id": spec.tenant_id,
                "service_id": spec.service_id,
                "at": datetime.fromtimestamp(sample.at, UTC),
                "previous": signal.previous.value,
                "status": signal.status.value,
                "reason": signal.reason[:500],
            }
        )

    async def flush(self, *, include_current: bool = False) -> None:
        """Write status changes and finished minute rollups, in transactions of at most
        ``CHUNK`` rollups, each service's rows in key order.

        Key order: replicas whose services moved between them write some of the same
        rows; taking the row locks in one order means they wait, never deadlock. Chunks:
        a backlog left by an outage goes out in bounded transactions (one too big for the
        statement timeout would fail again at every flush and keep growing).
        """
        rows, self._status_rows = self._status_rows, []
        rollups = self._rollups.drain(now=time.time(), include_current=include_current)
        if not rows and not rollups:
            return
        rollups.sort(key=_rollup_key)
        latest = {(r["tenant_id"], r["service_id"]): r for r in rows}
        statuses = [latest[key] for key in sorted(latest)]
        written = 0
        try:
            while True:
                chunk = rollups[written : written + CHUNK]
                async with self._db.session() as session:
                    if rows:
                        await samples_repo.add_status_changes(session=session, rows=rows)
                        await services_repo.set_statuses(session=session, rows=statuses)
                    await samples_repo.merge_rollups(session=session, rows=chunk)
                rows, statuses = [], []
                written += len(chunk)
                if written >= len(rollups):
                    return
        except StorageError:
            # keep what was not written for the next flush: an outage must not lose history
            self._status_rows[:0] = rows
            self._rollups.requeue(rollups[written:])
            raise


CHUNK = 2_000  # rollups per transaction


def _rollup_key(row: dict[str, Any]) -> tuple[str, str, Any]:
    return (row["tenant_id"], row["service_id"], row["minute"])
