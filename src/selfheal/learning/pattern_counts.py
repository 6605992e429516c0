"""``GET /api/insights``: the counts behind the pattern tests, computed by the database.

Episodes (incidents closer than a gap to the previous one merge) come from a
``LAG`` window function; windows, weekdays and co-failing pairs are grouped in
SQL and cut by the least count that could be reported (``HAVING``), so what
reaches Python is one row per (service, type) plus the few candidates, never
the incidents themselves. The same counts in memory, and the tests over
them: ``learning/patterns.py``.
"""

# ruff: noqa: S608  (SQL assembled from this module's fragments; values are bound)
from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.learning.patterns import (
    CO_WINDOW,
    EPISODE_GAP,
    MIN_CO,
    MIN_RECURRING,
    CoFailCounts,
    Finding,
    OutcomePoint,
    RecurringCounts,
    fading_fixes,
    least_days,
    score_co_failing,
    score_recurring,
)
from selfheal.storage.db import Database
from selfheal.storage.repositories import learning as learning_repo


async def load_insights(
    db: Database, *, tenant_id: str, days: int = 30, now: datetime | None = None
) -> dict[str, list[Finding]]:
    """Insights over a tenant's last ``days`` days of incidents and outcomes."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    async with db.session() as session:
        recurring = await recurring_counts(session=session, tenant_id=tenant_id, since=since)
        co_failing = await co_failing_counts(session=session, tenant_id=tenant_id, since=since)
        outcome_rows = await learning_repo.outcome_points(
            session=session, tenant_id=tenant_id, since=since
        )
    outcomes = [OutcomePoint(s, t, a, o == "recovered", at) for s, t, a, o, at in outcome_rows]
    # pure computation over its own lists: a worker thread, so probes due
    # meanwhile get the event loop back every switch interval
    found = {
        "recurring": score_recurring(recurring),
        "co_failing": score_co_failing(co_failing),
        "fading_fixes": await asyncio.to_thread(fading_fixes, outcomes),
    }
    return {k: sorted(v, key=lambda f: f.p_value) for k, v in found.items()}


def _fragments(dialect: str) -> dict[str, str]:
    """Per-dialect SQL for an ``opened_at`` column: epoch seconds, minute of the UTC
    day, UTC date and weekday (Monday 0)."""
    if dialect == "sqlite":
        return {
            "epoch": "((julianday(opened_at) - 2440587.5) * 86400.0)",
            "minute": "((julianday(opened_at) - julianday(date(opened_at))) * 1440.0)",
            "day": "date(opened_at)",
            "weekday": "((CAST(strftime('%w', opened_at) AS INTEGER) + 6) % 7)",
        }
    utc = "(opened_at AT TIME ZONE 'UTC')"
    return {
        "epoch": "EXTRACT(EPOCH FROM opened_at)::float8",
        "minute": f"(EXTRACT(EPOCH FROM {utc} - date_trunc('day', {utc})) / 60.0)::float8",
        "day": f"CAST({utc} AS date)",
        "weekday": f"(EXTRACT(ISODOW FROM {utc})::int - 1)",
    }


def _episodes(dialect: str, partition: str, gap: float) -> str:
    """CTEs ``inc`` (the window's incidents, each marked whether it starts an episode)
    and ``ep`` (episode starts with their time parts)."""
    f = _fragments(dialect)
    return f"""
    inc AS MATERIALIZED (
        SELECT service_id, type, opened_at, {f["epoch"]} AS t,
               {f["epoch"]} - LAG({f["epoch"]}) OVER (
                   PARTITION BY {partition} ORDER BY opened_at
               ) AS gap
        FROM incidents WHERE tenant_id = :tenant AND opened_at >= :since
    ),
    ep AS MATERIALIZED (
        SELECT service_id, type, t, {f["minute"]} AS minute, {f["day"]} AS day,
               {f["weekday"]} AS weekday
        FROM inc WHERE gap IS NULL OR gap >= {gap}
    )"""


def _bind(sql: str) -> TextClause:
    return text(sql).bindparams(bindparam("since", type_=DateTime(timezone=True)))


async def recurring_counts(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> RecurringCounts:
    """Episodes per (service, type) an hour apart, their windows and weekdays."""
    dialect = session.get_bind().dialect.name
    with_ = "WITH " + _episodes(dialect, "service_id, type", EPISODE_GAP.total_seconds())
    params = {"tenant": tenant_id, "since": since}
    groups = await session.execute(
        _bind(
            f"""{with_},
            tested AS MATERIALIZED (
                SELECT service_id, type FROM inc GROUP BY service_id, type
                HAVING count(*) >= {MIN_RECURRING}
            )
            SELECT ep.service_id, ep.type, count(*), count(DISTINCT ep.day)
            FROM ep JOIN tested USING (service_id, type)
            GROUP BY ep.service_id, ep.type"""
        ),
        params,
    )
    counts = RecurringCounts({(s, k): (n, d) for s, k, n, d in groups.all()}, {}, {})
    if not counts.groups:
        return counts
    days, weeks = least_days(counts)
    # each episode counts in the four windows that hold its 15-minute slot
    windows = await session.execute(
        _bind(
            f"""{with_},
            slotted AS (SELECT service_id, type, minute, CAST(minute / 15 AS INTEGER) AS slot
                        FROM ep),
            k (k) AS (VALUES (0), (1), (2), (3))
            SELECT service_id, type, (slot + 98 - k) % 96 AS centre, count(*),
                   sum(minute - slot * 15 + (k - 2) * 15)
            FROM slotted CROSS JOIN k
            GROUP BY service_id, type, (slot + 98 - k) % 96
            HAVING count(*) >= :days"""
        ),
        {**params, "days": days},
    )
    for service_id, kind, centre, n, offsets in windows.all():
        if (service_id, kind) in counts.groups:
            counts.windows.setdefault((service_id, kind), []).append(
                (int(centre), int(n), float(offsets))
            )
    weekdays = await session.execute(
        _bind(
            f"""{with_}
            SELECT service_id, type, weekday, count(DISTINCT day) FROM ep
            GROUP BY service_id, type, weekday HAVING count(DISTINCT day) >= :weeks"""
        ),
        {**params, "weeks": weeks},
    )
    for service_id, kind, weekday, n in weekdays.all():
        if (service_id, kind) in counts.groups:
            counts.weekdays.setdefault((service_id, kind), []).append((int(weekday), int(n)))
    return counts


async def co_failing_counts(
    *, session: AsyncSession, tenant_id: str, since: datetime
) -> CoFailCounts:
    """Episodes per service (any type), the span, and pairs sharing more than chance."""
    dialect = session.get_bind().dialect.name
    window = CO_WINDOW.total_seconds()
    with_ = "WITH " + _episodes(dialect, "service_id", 2 * window)
    params = {"tenant": tenant_id, "since": since}
    span_row = (
        await session.execute(_bind(f"{with_} SELECT min(t), max(t) FROM inc"), params)
    ).one()
    if span_row[0] is None:
        return CoFailCounts({}, 3600.0, [])
    span = max(float(span_row[1]) - float(span_row[0]), 3600.0)
    per_service = await session.execute(
        _bind(f"{with_} SELECT service_id, count(*) FROM ep GROUP BY service_id"), params
    )
    counts = CoFailCounts({s: int(n) for s, n in per_service.all()}, span, [])
    # pairs meet through 5-minute buckets (a's bucket and its neighbours; t > 0, so the
    # cast truncates like floor, which SQLite lacks without its math functions); a pair is
    # returned only past MIN_CO and past what chance gives (expected n_a * n_b * 2w / span)
    pairs = await session.execute(
        _bind(
            f"""{with_},
            n AS (SELECT service_id, count(*) AS n FROM ep GROUP BY service_id
                  HAVING count(*) >= {MIN_CO}),
            b AS MATERIALIZED (
                SELECT ep.service_id, t, CAST(t / {window} AS INTEGER) AS bucket, n.n
                FROM ep JOIN n USING (service_id)
            ),
            d (d) AS (VALUES (-1), (0), (1))
            SELECT x.service_id, y.service_id, count(DISTINCT x.t)
            FROM b x CROSS JOIN d JOIN b y
              ON y.bucket = x.bucket + d.d AND x.service_id < y.service_id
             AND abs(y.t - x.t) <= {window}
            GROUP BY x.service_id, y.service_id
            HAVING count(DISTINCT x.t) >= {MIN_CO}
               AND count(DISTINCT x.t) > max(x.n) * max(y.n) * :rate"""
        ),
        {**params, "rate": 2 * window / span},
    )
    counts.pairs = sorted((a, b, int(shared)) for a, b, shared in pairs.all())
    return counts
