"""Patterns in the incident history: recurring incidents, co-failing services, fading fixes.

Each finding is a statistical test against "nothing going on", with the
p-value corrected for how many things were tested (Bonferroni), so a fleet
with hundreds of services and random trouble does not produce a list of
coincidences. Only findings with a corrected p-value under ``ALPHA`` are
reported, strongest first.

* **Recurring** (same service and type). Incidents less than an hour apart
  are one *episode*. Time of day: for windows of one hour centred every 15
  minutes (four 15-minute slots), count the days with an episode in the window
  (episodes are an hour apart, so one a day at most); under
  "any time of day" each episode lands there with probability 1/24
  (binomial tail). Day of week: the busiest weekday against 1/7.
* **Co-failing services**. Episodes of two services starting within
  ``CO_WINDOW`` of each other, counted against what independent services with
  those incident rates would show by chance (Poisson tail of the expected
  count n_a * n_b * 2 * window / span).
* **Fixes that stopped working**. For each (incident type, action), on one
  service or fleet-wide, the outcomes before and after each split point:
  Fisher's exact test that the recent run succeeds less, the latest outcome
  included.

Times are UTC. The tail probabilities are exact sums over log-gamma terms:
two lines each, so no scipy for them. The tests run over counts
(``RecurringCounts``, ``CoFailCounts``): ``count_*`` make them from points in
memory, ``learning/pattern_counts.py`` has the database make them for
``GET /api/insights``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

ALPHA = 0.01
EPISODE_GAP = timedelta(hours=1)
CO_WINDOW = timedelta(minutes=5)
MIN_RECURRING = 4  # distinct days
MIN_CO = 3  # shared episodes
MIN_FIX_OUTCOMES = 8
_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


@dataclass(frozen=True, slots=True)
class IncidentPoint:
    """The part of an incident pattern-finding needs."""

    service_id: str
    type: str
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class OutcomePoint:
    """The part of a verified action pattern-finding needs."""

    service_id: str
    incident_type: str
    action: str
    recovered: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """One reported pattern."""

    kind: str  # recurring_time_of_day | recurring_day_of_week | co_failing | fading_fix
    summary: str
    p_value: float  # Bonferroni-corrected
    data: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON view."""
        return {
            "kind": self.kind,
            "summary": self.summary,
            "p_value": float(f"{self.p_value:.3g}"),
            **self.data,
        }


def episodes(times: Iterable[datetime], gap: timedelta = EPISODE_GAP) -> list[datetime]:
    """Start times of bursts: incidents closer than ``gap`` to the previous one merge."""
    out: list[datetime] = []
    last: datetime | None = None
    for t in sorted(times):
        if last is None or t - last >= gap:
            out.append(t)
        last = t
    return out


@dataclass(slots=True)
class RecurringCounts:
    """What the recurrence tests need, counted per (service, type): the database
    counts it (``storage/repositories/insights.py``) or ``count_recurring`` does.

    A window is one hour centred on a 15-minute slot boundary ``centre`` (0-95):
    slots ``centre - 2`` to ``centre + 1``. Episode starts are an hour apart or more,
    so a window holds at most one per day: its episodes are its days.
    """

    groups: dict[tuple[str, str], tuple[int, int]]  # -> (episodes, distinct days)
    windows: dict[tuple[str, str], list[tuple[int, int, float]]]  # (centre, days, offset sum)
    weekdays: dict[tuple[str, str], list[tuple[int, int]]]  # (weekday, weeks), Monday 0


def minute_of_day(t: datetime) -> float:
    """Minutes since midnight UTC."""
    return t.hour * 60 + t.minute + t.second / 60 + t.microsecond / 60e6


def count_recurring(incidents: Sequence[IncidentPoint]) -> RecurringCounts:
    """``RecurringCounts`` of points in memory (what the database's query computes)."""
    by_group: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for i in incidents:
        by_group[(i.service_id, i.type)].append(i.opened_at)
    counts = RecurringCounts({}, {}, {})
    for key, times in by_group.items():
        if len(times) < MIN_RECURRING:
            continue
        starts = episodes(times)
        counts.groups[key] = (len(starts), len({t.date() for t in starts}))
        windows: dict[int, tuple[int, float]] = {}
        for t in starts:
            m = minute_of_day(t)
            slot = int(m // 15)
            for k in range(4):
                centre = (slot + 2 - k) % 96
                days, offsets = windows.get(centre, (0, 0.0))
                windows[centre] = (days + 1, offsets + m - slot * 15 + (k - 2) * 15)
        counts.windows[key] = [(c, d, o) for c, (d, o) in sorted(windows.items())]
        weeks: dict[int, set[datetime]] = defaultdict(set)
        for t in starts:
            weeks[t.weekday()].add(datetime(t.year, t.month, t.day))
        counts.weekdays[key] = [(day, len(dates)) for day, dates in sorted(weeks.items())]
    return counts


def recurring(incidents: Sequence[IncidentPoint]) -> list[Finding]:
    """Same service and type at the same time of day, or on the same weekday."""
    return score_recurring(count_recurring(incidents))


def least_days(counts: RecurringCounts) -> tuple[int, int]:
    """The fewest days in a window, and weeks on a weekday, that any group would need
    to be reported: the database need not return windows or weekdays below them."""
    tested = max(len(counts.groups), 1)
    days = weeks = 10**9
    for n, dates in counts.groups.values():
        days = min(days, _least(n, 1 / 24, ALPHA / (96 * tested)))
        weeks = min(weeks, _least(dates, 1 / 7, ALPHA / (7 * tested)))
    return max(days, MIN_RECURRING), max(weeks, MIN_RECURRING)


def _least(n: int, p: float, level: float) -> int:
    for k in range(MIN_RECURRING, n + 1):
        if _binom_sf(k, n, p) < level:
            return k
    return n + 1


def score_recurring(counts: RecurringCounts) -> list[Finding]:
    """Findings from counted windows and weekdays, Bonferroni-corrected over the groups."""
    tested = len(counts.groups)
    found: list[Finding] = []
    for (service_id, kind), (n, dates) in sorted(counts.groups.items()):
        key = (service_id, kind)
        found.extend(_time_of_day(service_id, kind, n, counts.windows.get(key, []), tested))
        found.extend(_day_of_week(service_id, kind, dates, counts.weekdays.get(key, []), tested))
    return found


def _time_of_day(
    service: str, kind: str, n: int, windows: list[tuple[int, int, float]], groups: int
) -> list[Finding]:
    best: tuple[float, int, int, float] | None = None  # p, centre, days, offset sum
    for centre, days, offsets in windows:
        if days < MIN_RECURRING:
            continue
        p = _binom_sf(days, n, 1 / 24)
        if best is None or p < best[0]:
            best = (p, centre, days, offsets)
    if best is None:
        return []
    p_adj = min(1.0, best[0] * 96 * groups)
    if p_adj >= ALPHA:
        return []
    # report the mean time of the episodes in the window, to 5 minutes
    mean = best[1] * 15 + best[3] / best[2]
    centre = round(mean / 5) * 5 % 1440
    at = f"{centre // 60:02d}:{centre % 60:02d}"
    return [
        Finding(
            "recurring_time_of_day",
            f"{service}: {kind} recurs around {at} UTC ({best[2]} days out of {n} episodes)",
            p_adj,
            {"service_id": service, "type": kind, "around": at, "days": best[2], "episodes": n},
        )
    ]


def _day_of_week(
    service: str, kind: str, dates: int, weekdays: list[tuple[int, int]], groups: int
) -> list[Finding]:
    if not weekdays:
        return []
    day, hits = max(weekdays, key=lambda dw: (dw[1], -dw[0]))
    if hits < MIN_RECURRING:
        return []
    p_adj = min(1.0, _binom_sf(hits, dates, 1 / 7) * 7 * groups)
    if p_adj >= ALPHA:
        return []
    return [
        Finding(
            "recurring_day_of_week",
            f"{service}: {kind} recurs on {_WEEKDAYS[day]} ({hits} weeks)",
            p_adj,
            {"service_id": service, "type": kind, "weekday": _WEEKDAYS[day], "weeks": hits},
        )
    ]


@dataclass(slots=True)
class CoFailCounts:
    """What the co-failure test needs: episodes per service (``CO_WINDOW * 2`` apart),
    the span of the history in seconds, and the pairs (a < b) whose shared episodes
    (a's episodes with one of b's within ``CO_WINDOW``) are at least ``MIN_CO``."""

    episodes: dict[str, int]
    span: float
    pairs: list[tuple[str, str, int]]


def count_co_failing(incidents: Sequence[IncidentPoint]) -> CoFailCounts:
    """``CoFailCounts`` of points in memory (what the database's query computes)."""
    if not incidents:
        return CoFailCounts({}, 3600.0, [])
    per_service: dict[str, list[datetime]] = defaultdict(list)
    for i in incidents:
        per_service[i.service_id].append(i.opened_at)
    starts = {s: episodes(ts, CO_WINDOW * 2) for s, ts in per_service.items()}
    first = min(i.opened_at for i in incidents)
    last = max(i.opened_at for i in incidents)
    names = sorted(s for s, ts in starts.items() if len(ts) >= MIN_CO)
    pairs = []
    for a, b in combinations(names, 2):
        shared = _shared(starts[a], starts[b], CO_WINDOW)
        if shared >= MIN_CO:
            pairs.append((a, b, shared))
    span = max((last - first).total_seconds(), 3600.0)
    return CoFailCounts({s: len(ts) for s, ts in starts.items()}, span, pairs)


def co_failing(incidents: Sequence[IncidentPoint]) -> list[Finding]:
    """Pairs of services whose trouble starts together more often than chance says."""
    return score_co_failing(count_co_failing(incidents))


def score_co_failing(counts: CoFailCounts) -> list[Finding]:
    """Findings from counted pairs, Bonferroni-corrected over the pairs tested."""
    window = CO_WINDOW.total_seconds()
    names = sum(1 for n in counts.episodes.values() if n >= MIN_CO)
    pairs = names * (names - 1) // 2
    found = []
    for a, b, shared in counts.pairs:
        n_a, n_b = counts.episodes[a], counts.episodes[b]
        expected = n_a * n_b * 2 * window / counts.span
        p_adj = min(1.0, _poisson_sf(shared, expected) * pairs)
        if p_adj >= ALPHA:
            continue
        found.append(
            Finding(
                "co_failing",
                f"{a} and {b} fail together: {shared} shared episodes "
                f"({shared / max(expected, 1e-9):.0f}x chance); probable shared cause",
                p_adj,
                {
                    "services": [a, b],
                    "shared": shared,
                    "expected_by_chance": round(expected, 3),
                    "episodes": {a: n_a, b: n_b},
                },
            )
        )
    return found


def _shared(a: list[datetime], b: list[datetime], window: timedelta) -> int:
    """Episodes of ``a`` with an episode of ``b`` within ``window`` (two-pointer walk)."""
    count = j = 0
    for t in a:
        while j < len(b) and b[j] < t - window:
            j += 1
        if j < len(b) and abs(b[j] - t) <= window:
            count += 1
    return count


def fading_fixes(outcomes: Sequence[OutcomePoint]) -> list[Finding]:
    """(type, action) pairs, per service and fleet-wide, whose latest run fails more than before."""
    groups: dict[tuple[str, str, str], list[OutcomePoint]] = defaultdict(list)
    for o in outcomes:
        groups[("*", o.incident_type, o.action)].append(o)
        groups[(o.service_id, o.incident_type, o.action)].append(o)
    tested = {k: sorted(v, key=lambda o: o.at) for k, v in groups.items()}
    tested = {k: v for k, v in tested.items() if len(v) >= MIN_FIX_OUTCOMES}
    found = []
    for (scope, kind, action), runs in sorted(tested.items()):
        best = _best_split([o.recovered for o in runs])
        if best is None:
            continue
        p, cut, before, after = best
        p_adj = min(1.0, p * (len(runs) - 6) * len(tested))
        if p_adj >= ALPHA * 5:  # a fading fix is worth a look at a looser level
            continue
        where = "across the fleet" if scope == "*" else f"on {scope}"
        since = runs[cut].at
        found.append(
            Finding(
                "fading_fix",
                f"{action} for {kind} {where} stopped working: {after:.0%} of the last "
                f"{len(runs) - cut} runs recovered, {before:.0%} before",
                p_adj,
                {
                    "scope": scope,
                    "type": kind,
                    "action": action,
                    "success_before": round(before, 3),
                    "success_recent": round(after, 3),
                    "recent_runs": len(runs) - cut,
                    "since": since.isoformat(),
                },
            )
        )
    return found


def _best_split(wins: list[bool]) -> tuple[float, int, float, float] | None:
    """Most significant drop between a prefix (>= 4 runs) and the latest suffix (>= 3)."""
    best = None
    n = len(wins)
    for cut in range(4, n - 2):
        a, b = wins[:cut], wins[cut:]
        rate_a, rate_b = sum(a) / len(a), sum(b) / len(b)
        if rate_a < 0.6 or rate_b > rate_a - 0.3:
            continue
        p = _fisher_less(sum(b), len(b), sum(a), len(a))
        if best is None or p < best[0]:
            best = (p, cut, rate_a, rate_b)
    return best


def insights(
    incidents: Sequence[IncidentPoint], outcomes: Sequence[OutcomePoint]
) -> dict[str, list[Finding]]:
    """Every kind of finding, each list strongest first."""
    found = {
        "recurring": recurring(incidents),
        "co_failing": co_failing(incidents),
        "fading_fixes": fading_fixes(outcomes),
    }
    return {k: sorted(v, key=lambda f: f.p_value) for k, v in found.items()}


# -- exact tails ------------------------------------------------------------------------


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k), X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return min(
        1.0,
        sum(
            math.exp(_log_comb(n, j) + j * math.log(p) + (n - j) * math.log1p(-p))
            for j in range(k, n + 1)
        ),
    )


def _poisson_sf(k: int, lam: float) -> float:
    """P(X >= k), X ~ Poisson(lam)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    if k <= lam:
        below = sum(math.exp(j * math.log(lam) - lam - math.lgamma(j + 1)) for j in range(k))
        return max(0.0, 1.0 - below)
    # summed upwards: exact even when the tail is astronomically small
    return min(
        1.0,
        sum(
            math.exp(j * math.log(lam) - lam - math.lgamma(j + 1))
            for j in range(k, k + 60 + int(3 * lam))
        ),
    )


def _fisher_less(wins_b: int, n_b: int, wins_a: int, n_a: int) -> float:
    """One-sided Fisher exact test: P(the recent group has this few wins or fewer)."""
    total_wins = wins_a + wins_b
    n = n_a + n_b
    low = max(0, total_wins - n_a)
    log_denominator = _log_comb(n, total_wins)
    return min(
        1.0,
        sum(
            math.exp(_log_comb(n_b, x) + _log_comb(n_a, total_wins - x) - log_denominator)
            for x in range(low, wins_b + 1)
        ),
    )
