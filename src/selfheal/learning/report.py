"""The plain-text weekly report (``selfheal report``): what happened, what worked, patterns."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from statistics import median

from selfheal.learning.outcomes import load_state
from selfheal.learning.patterns import (
    IncidentPoint,
    OutcomePoint,
    insights,
)
from selfheal.storage.db import Database
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.repositories.learning import FLEET
from selfheal.storage.tables import Incident


async def weekly_report(
    db: Database, *, tenant_id: str, days: int = 7, now: datetime | None = None
) -> str:
    """The report text for a tenant over the last ``days`` days."""
    end = now or datetime.now(UTC)
    since = end - timedelta(days=days)
    async with db.session() as session:
        incidents = await learning_repo.incident_rows(
            session=session, tenant_id=tenant_id, since=since
        )
        outcomes = await learning_repo.outcome_points(
            session=session, tenant_id=tenant_id, since=since
        )
    fixes = await load_state(db, tenant_id=tenant_id, scope=FLEET)
    lines = [
        f"selfheal report for tenant {tenant_id}: {since:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC ({days} days)",
        "",
    ]
    lines += _incident_lines(incidents)
    lines += _healing_lines(outcomes)
    lines += ["", "What works (fleet-wide, recent outcomes weigh more):"]
    best: dict[str, list[str]] = {}
    for f in sorted(fixes, key=lambda f: -(f.evidence.successes + 1) / (f.evidence.weight + 2)):
        if f.evidence.runs:
            mean = (f.evidence.successes + 1) / (f.evidence.weight + 2)
            best.setdefault(f.incident_type, []).append(
                f"{f.action} {mean:.0%} ({f.evidence.recovered}/{f.evidence.runs} runs)"
            )
    lines += [f"  {kind}: " + ", ".join(items) for kind, items in sorted(best.items())] or [
        "  no verified fixes yet"
    ]
    found = insights(
        [IncidentPoint(r.service_id, r.type, r.opened_at) for r in incidents],
        [OutcomePoint(s, t, a, o == "recovered", at) for s, t, a, o, at in outcomes],
    )
    lines += ["", "Patterns:"]
    everything = sorted((f for v in found.values() for f in v), key=lambda f: f.p_value)
    lines += [f"  - {f.summary} (p={f.p_value:.2g})" for f in everything[:10]] or [
        "  none stand out from chance"
    ]
    return "\n".join(lines) + "\n"


def _incident_lines(rows: list[Incident]) -> list[str]:
    if not rows:
        return ["Incidents: none."]
    by_type = Counter(r.type for r in rows)
    by_service = Counter(r.service_id for r in rows)
    status = Counter(r.status for r in rows)
    ttr = [(r.resolved_at - r.opened_at).total_seconds() for r in rows if r.resolved_at]
    out = [
        f"Incidents: {len(rows)} ({', '.join(f'{n} {s}' for s, n in status.most_common())})",
        "  by type: " + ", ".join(f"{t} {n}" for t, n in by_type.most_common()),
        "  busiest services: " + ", ".join(f"{s} {n}" for s, n in by_service.most_common(5)),
    ]
    if ttr:
        out.append(f"  time to resolve: median {median(ttr):.1f} s, worst {max(ttr):.1f} s")
    anomalies = by_type.get("anomaly", 0)
    if anomalies:
        out.append(f"  {anomalies} found by learned baselines (anomaly)")
    return out


def _healing_lines(outcomes: list[tuple[str, str, str, str, datetime]]) -> list[str]:
    if not outcomes:
        return ["Healing: no verified actions."]
    recovered = sum(1 for *_, o, _at in outcomes if o == "recovered")
    per_action = Counter((a, o == "recovered") for _s, _t, a, o, _at in outcomes)
    actions = sorted({a for a, _ in per_action})
    return [
        f"Healing: {len(outcomes)} verified actions, {recovered / len(outcomes):.0%} recovered",
        "  "
        + ", ".join(
            f"{a} {per_action[(a, True)]}/{per_action[(a, True)] + per_action[(a, False)]}"
            for a in actions
        ),
    ]
