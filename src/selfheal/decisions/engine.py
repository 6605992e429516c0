"""Choosing the fix for an incident, and writing down why.

Candidates come from the catalog, ranked by what has been learned; then the
candidate-level guard rails filter them, each skip naming its rule:

- ``runnable``: the service has a way to carry the fix out;
- ``breaker``: the fix failed ``breaker.failures`` times in a row on this service
  within ``breaker.reset_after`` (it is half-open again after that);
- ``cooldown``: the fix ran on this service less than ``cooldown`` ago;
- ``backoff``: a restart waits longer after each restart in a row.

A fix held only by ``cooldown`` or ``backoff`` is waited for (``retry_after``),
never counted as exhausted: the incident stays open and says until when.

Within one incident an untried fix always comes before a retry of a failed one.
Incident-level rules (kill switch, silences, dependencies, flapping, rate
limits, dry run, approval, concurrency) are the heal loop's, around this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.decisions.catalog import default_entries
from selfheal.decisions.policy import PolicySource, policies_for
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

RESTART = "restart"


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about an incident now.

    ``action`` None means nothing can run: escalate, unless ``retry_after`` says
    a fix becomes possible after a short wait (a restart backoff).
    """

    reason: str
    confidence: float
    action: str | None = None
    executor: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    considered: list[dict[str, Any]] = field(default_factory=list)
    retry_after: float | None = None

    @property
    def escalate(self) -> bool:
        """True when no automated fix is left."""
        return self.action is None and self.retry_after is None

    def as_dict(self) -> dict[str, Any]:
        """What is stored with the action and on the timeline."""
        return {
            "action": self.action,
            "executor": self.executor,
            "reason": self.reason,
            "confidence": round(self.confidence, 4),
            "considered": self.considered,
            "retry_after": self.retry_after,
        }


async def ensure_catalog(db: Database, tenant_id: str) -> None:
    """Give a tenant the default catalog the first time it needs one."""
    async with db.session() as session:
        if not await catalog_repo.has_catalog(session=session, tenant_id=tenant_id):
            await catalog_repo.replace_catalog(
                session=session, tenant_id=tenant_id, entries=default_entries()
            )


BackoffWait = Callable[[ServiceSpec], float]


class Decider:
    """Picks, among the fixes this service can carry out, the one most likely to work."""

    def __init__(
        self,
        db: Database,
        policies: PolicySource,
        backoff_wait: BackoffWait | None = None,
        *,
        strategy: Strategy = "thompson",
        rng: np.random.Generator | None = None,
    ) -> None:
        self._db = db
        self._policies = policies
        self._backoff_wait = backoff_wait or (lambda _spec: 0.0)
        self._strategy: Strategy = strategy
        # ranking draws from posteriors; a seeded generator makes a run reproducible
        self._rng = rng if rng is not None else np.random.default_rng()

    async def decide(
        self,
        spec: ServiceSpec,
        incident_type: str,
        tried: dict[str, int],
        *,
        clarity: float = 1.0,
        prefer: str | None = None,
    ) -> Decision:
        """The best runnable fix that no guard rail skips, or escalation.

        ``prefer`` goes first among the untried (a crash loop is restarted again)."""
        await ensure_catalog(self._db, spec.tenant_id)
        now = datetime.now(UTC)
        async with self._db.session() as session:
            candidates = await self._candidates(session, spec, incident_type)
            # untried fixes first, then retries; each group in ranked order
            ordered = sorted(
                candidates, key=lambda c: (tried.get(c.action, 0) > 0, c.action != prefer)
            )
            considered: list[dict[str, Any]] = []
            waits: list[float] = []
            for candidate in ordered:
                rule, why, wait = await self._skip(session, spec, candidate.action, now)
                if rule is not None:
                    considered.append(candidate.as_dict() | {"skipped": why, "rule": rule})
                    if wait:
                        waits.append(wait)
                    continue
                considered.append(candidate.as_dict() | {"chosen": True})
                executor = spec.can_run(candidate.action)
                assert executor is not None
                remediation = spec.remediation.get(candidate.action)
                params = candidate.params | (remediation.params if remediation else {})
                retry = tried.get(candidate.action, 0)
                reason = _reason(candidate, considered, retry, self._strategy)
                if candidate.action == prefer:
                    reason += f"; {prefer} goes first for this incident"
                return Decision(
                    action=candidate.action,
                    executor=executor,
                    params=params,
                    reason=reason,
                    confidence=round(clarity * candidate.mean, 4),
                    considered=considered,
                )
        skipped = "; ".join(f"{c['action']}: {c['skipped']}" for c in considered) or (
            f"the catalog has no fix for {incident_type}"
        )
        if waits:
            wait = min(waits)
            until = (now + timedelta(seconds=wait)).isoformat(timespec="seconds")
            return Decision(
                reason=f"waiting {wait:.0f}s, until {until}: every fix is held for now ({skipped})",
                confidence=0.0,
                considered=considered,
                retry_after=wait,
            )
        return Decision(
            reason=f"no automated fix left ({skipped})",
            confidence=1.0,
            considered=considered,
        )

    async def _candidates(
        self, session: AsyncSession, spec: ServiceSpec, incident_type: str
    ) -> list[Candidate]:
        """The catalog's fixes, ordered by learning (policy filters this order after)."""
        entries = await catalog_repo.catalog_entries(
            session=session, tenant_id=spec.tenant_id, incident_type=incident_type
        )
        own, fleet = await gather_evidence(
            session,
            tenant_id=spec.tenant_id,
            service_id=spec.service_id,
            incident_type=incident_type,
        )
        return rank(
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

    async def _skip(
        self, session: AsyncSession, spec: ServiceSpec, action: str, now: datetime
    ) -> tuple[str | None, str, float]:
        """(rule, why, seconds until it may pass) for a held candidate; rule None if it may run."""
        if spec.can_run(action) is None:
            if not spec.webhook_url and action not in spec.remediation:
                return "runnable", "the service has no remediation for it and no webhook URL", 0
            return "runnable", "the service has a webhook URL but no secret to sign it with", 0
        breaker = policies_for(self._policies, spec.tenant_id).breaker
        outcomes = await actions_repo.recent_outcomes(
            session=session,
            tenant_id=spec.tenant_id,
            service_id=spec.service_id,
            action=action,
            since=now - timedelta(seconds=breaker.reset_after),
            limit=breaker.failures,
        )
        if len(outcomes) >= breaker.failures and all(o == "not_recovered" for o in outcomes):
            return (
                "breaker",
                f"circuit breaker open: failed {breaker.failures} times in a row "
                f"(closes {breaker.reset_after:g}s after the last failure)",
                0,
            )
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
                    # a fix in cooldown is waited for, never counted as exhausted
                    wait = spec.cooldown - elapsed
                    until = (now + timedelta(seconds=wait)).isoformat(timespec="seconds")
                    return (
                        "cooldown",
                        f"in cooldown until {until}: ran {elapsed:.0f}s ago, "
                        f"cooldown is {spec.cooldown:g}s",
                        wait,
                    )
        if action == RESTART:
            wait = self._backoff_wait(spec)
            if wait > 0:
                return "backoff", f"restart backoff: next restart allowed in {wait:.0f}s", wait
        return None, "", 0


def _reason(
    chosen: Candidate, considered: list[dict[str, Any]], retry: int, strategy: Strategy
) -> str:
    skipped = [c for c in considered if "skipped" in c]
    tail = (
        f"; skipped {', '.join(c['action'] + ' (' + c['rule'] + ')' for c in skipped)}"
        if skipped
        else ""
    )
    again = f" (retry {retry + 1})" if retry else ""
    return explain(chosen, 1, strategy).replace(chosen.action, chosen.action + again, 1) + tail
