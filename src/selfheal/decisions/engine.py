"""Choosing the fix for an incident, and writing down why."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from selfheal.decisions.catalog import default_entries
from selfheal.decisions.ranking import (
    NO_EVIDENCE,
    Candidate,
    Strategy,
    explain,
    gather_evidence,
    rank,
)
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as actions_repo
from selfheal.storage.repositories import catalog as catalog_repo


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about an incident now. ``action`` None means escalate to people."""

    reason: str
    confidence: float
    action: str | None = None
    executor: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    considered: list[dict[str, Any]] = field(default_factory=list)

    @property
    def escalate(self) -> bool:
        """True when no automated fix is left."""
        return self.action is None

    def as_dict(self) -> dict[str, Any]:
        """What is stored with the action and on the timeline."""
        return {
            "action": self.action,
            "executor": self.executor,
            "reason": self.reason,
            "confidence": round(self.confidence, 4),
            "considered": self.considered,
        }


async def ensure_catalog(db: Database, tenant_id: str) -> None:
    """Give a tenant the default catalog the first time it needs one."""
    async with db.session() as session:
        if not await catalog_repo.has_catalog(session=session, tenant_id=tenant_id):
            await catalog_repo.replace_catalog(
                session=session, tenant_id=tenant_id, entries=default_entries()
            )


class Decider:
    """Picks, among the fixes this service can carry out, the one most likely to work."""

    def __init__(
        self,
        db: Database,
        *,
        strategy: Strategy = "thompson",
        rng: np.random.Generator | None = None,
    ) -> None:
        self._db = db
        self._strategy: Strategy = strategy
        # ranking draws from posteriors; a seeded generator makes a run reproducible
        self._rng = rng if rng is not None else np.random.default_rng()

    async def decide(self, spec: ServiceSpec, incident_type: str, tried: set[str]) -> Decision:
        """The best runnable, untried fix not in cooldown, or escalation."""
        await ensure_catalog(self._db, spec.tenant_id)
        async with self._db.session() as session:
            entries = await catalog_repo.catalog_entries(
                session=session, tenant_id=spec.tenant_id, incident_type=incident_type
            )
            # --- ranking: learning orders the fixes; policy below filters that order ---
            own, fleet = await gather_evidence(
                session,
                tenant_id=spec.tenant_id,
                service_id=spec.service_id,
                incident_type=incident_type,
            )
            candidates = rank(
                [
                    Candidate(
                        action=e.action,
                        position=e.position,
                        params=dict(e.params),
                        service=own.get(e.action, NO_EVIDENCE),
                        fleet=fleet.get(e.action, NO_EVIDENCE),
                    )
                    for e in entries
                    if e.enabled
                ],
                rng=self._rng,
                strategy=self._strategy,
            )
            considered: list[dict[str, Any]] = []
            now = datetime.now(UTC)
            for candidate in candidates:
                why_not = await self._why_not(session, spec, candidate.action, tried, now)
                if why_not is not None:
                    considered.append(candidate.as_dict() | {"skipped": why_not})
                    continue
                considered.append(candidate.as_dict() | {"chosen": True})
                executor = spec.can_run(candidate.action)
                assert executor is not None
                remediation = spec.remediation.get(candidate.action)
                params = candidate.params | (remediation.params if remediation else {})
                return Decision(
                    action=candidate.action,
                    executor=executor,
                    params=params,
                    reason=explain(candidate, len(considered), self._strategy),
                    confidence=candidate.mean,
                    considered=considered,
                )
        skipped = "; ".join(f"{c['action']}: {c['skipped']}" for c in considered) or (
            f"the catalog has no fix for {incident_type}"
        )
        return Decision(
            reason=f"escalating: no automated fix left ({skipped})",
            confidence=1.0,
            considered=considered,
        )

    async def _why_not(
        self, session: Any, spec: ServiceSpec, action: str, tried: set[str], now: datetime
    ) -> str | None:
        if action in tried:
            return "already tried for this incident"
        if spec.can_run(action) is None:
            if not spec.webhook_url and action not in spec.remediation:
                return "the service has no remediation for it and no webhook URL"
            return "the service has a webhook URL but no secret to sign it with"
        if spec.cooldown > 0:
            last = await actions_repo.last_run_at(
                session=session,
                tenant_id=spec.tenant_id,
                service_id=spec.service_id,
                action=action,
            )
            if last is not None:
                elapsed = (now - last).total_seconds()
                if elapsed < spec.cooldown:
                    return f"in cooldown: ran {elapsed:.0f}s ago, cooldown is {spec.cooldown:g}s"
        return None
