"""The views of the anomaly detector beyond the raw values: block means, extremes, seasons."""

from __future__ import annotations

import math
from array import array

from selfheal.learning.anomaly_config import AnomalyConfig
from selfheal.learning.anomaly_model import (
    _as_float,
    _as_int,
    _as_list,
    _finite_or_none,
    _nan_if_none,
    _View,
)

_DAY = 86400.0
_LEVEL_WEIGHT = 0.1  # EWMA weight of the level that tells a block's high from its low extreme
_SEASON_LEVEL_WEIGHT = 0.1  # EWMA weight of the recent level the seasonal view compares with
_SEASON_SQUARE_WEIGHT = 0.02  # EWMA weight of its mean squares (about 50 blocks)
_SEASON_CLIP = 3.0  # largest profile update, in root-mean-square residuals
_RUN_MIN = 12  # an unchanged value counts as stuck after an hour of 5-minute samples
_RUN_MEMORY = 4096  # samples remembered (halved beyond), so that old behaviour fades


class _BlockView(_View):
    """A view that speaks once per block of `block` values.

    It is not handed every value: the detector keeps the latest values in one
    ring buffer (sample number n at ``ring[n % len(ring)]``) and calls the
    view when its block is complete, at sample number `due`. The view then
    adds the block up in arrival order, so its sums are those of a running
    total. (Touching every view for every value cost more than the arithmetic:
    in an agent with thousands of detectors their memory is cold.) A block's
    values are those after sample `start`; `carry` is the sum of `carried`
    values before them, which only a loaded state has.
    """

    __slots__ = ("block", "carried", "carry", "due", "start")

    def __init__(self, order: int, block: int, config: AnomalyConfig) -> None:
        super().__init__(order, config)
        self.block = block
        self.start_at(0)

    def start_at(self, seen: int, carry: float = 0.0, carried: int = 0) -> None:
        """Begin a block after sample `seen`, with `carried` values summing to `carry` in it."""
        if carried < 0:
            raise ValueError("bad detector state: negative block count")
        self.start, self.carry, self.carried = seen, carry, carried
        self.due = seen + max(1, self.block - carried)

    def _take(self, ring: array[float], n: int) -> array[float]:
        """The block's values (sample numbers start+1..n, oldest first); starts the next block."""
        start = self.start
        size = len(ring)
        first = (start + 1) % size
        last = first + n - start
        part = ring[first:last] if last <= size else ring[first:] + ring[: last - size]
        self.start, self.carry, self.carried, self.due = n, 0.0, 0, n + self.block
        return part

    def pending(self, ring: array[float], seen: int) -> tuple[float, int]:
        """Running total and count of the open block after sample `seen` (for the state)."""
        total = self.carry
        for x in _recent(ring, seen, seen - self.start):
            total += x
        return total, self.carried + seen - self.start


def _recent(ring: array[float], n: int, count: int) -> array[float]:
    """The values of sample numbers n-count+1..n, oldest first."""
    if count <= 0:
        return ring[:0]
    size = len(ring)
    first = (n - count + 1) % size
    if first + count <= size:
        return ring[first : first + count]
    return ring[first:] + ring[: first + count - size]


class _Resolution(_BlockView):
    """One time scale: block means of the values (block 1: the raw values)."""

    __slots__ = ()

    def __init__(self, block: int, config: AnomalyConfig) -> None:
        order = config.context_order if block == 1 else config.block_context_order
        super().__init__(order, block, config)

    def complete(self, ring: array[float], n: int) -> float:
        """Surprisal in bits of the block's mean (the block ends with sample n)."""
        total, filled = self.carry, self.carried
        for x in self._take(ring, n):
            total += x
            filled += 1
        return self.code(total / filled)

    def to_state(self, ring: array[float], seen: int) -> dict[str, object]:
        total, filled = (0.0, 0) if self.block == 1 else self.pending(ring, seen)
        return {**self._view_state(), "total": total, "filled": filled}

    def load_state(self, state: dict[str, object], seen: int) -> None:
        self._load_view(state)
        self.start_at(seen, _as_float(state["total"]), _as_int(state["filled"]))


class _ExtremeView(_BlockView):
    """Blocks of a few samples, each seen through its most extreme value.

    The extreme is the block's maximum or its minimum, whichever lies farther
    from the recent level (an exponential average of block means), so that a
    spike in either direction survives the blocking.
    """

    __slots__ = ("highest", "level", "lowest", "ready", "warm")

    def __init__(self, block: int, config: AnomalyConfig) -> None:
        super().__init__(config.block_context_order, block, config)
        self.warm = -(-config.warmup_samples // block)
        self.highest = -math.inf  # of the carried values
        self.lowest = math.inf
        self.level = math.nan
        self.ready = self.warm <= 0  # past its own warm-up (a view added to an older detector)

    def complete(self, ring: array[float], n: int) -> float:
        """Surprisal in bits of the block's extreme (the block ends with sample n)."""
        total, filled = self.carry, self.carried
        highest, lowest = self.highest, self.lowest
        for x in self._take(ring, n):
            total += x
            filled += 1
            if x > highest:
                highest = x
            if x < lowest:
                lowest = x
        self.highest, self.lowest = -math.inf, math.inf
        mean = total / filled
        level = self.level
        level = mean if math.isnan(level) else level + _LEVEL_WEIGHT * (mean - level)
        self.level = level
        extreme = highest if highest - level >= level - lowest else lowest
        bits = self.code(extreme)
        self.ready = self.model.seen >= self.warm
        return bits

    def to_state(self, ring: array[float], seen: int) -> dict[str, object]:
        total, filled = self.pending(ring, seen)
        highest, lowest = self.highest, self.lowest
        for x in _recent(ring, seen, seen - self.start):
            if x > highest:
                highest = x
            if x < lowest:
                lowest = x
        return {
            **self._view_state(),
            "total": total,
            "filled": filled,
            "highest": _finite_or_none(highest),
            "lowest": _finite_or_none(lowest),
            "level": _finite_or_none(self.level),
        }

    def load_state(self, state: dict[str, object], seen: int) -> None:
        self._load_view(state)
        self.start_at(seen, _as_float(state["total"]), _as_int(state["filled"]))
        highest, lowest = state["highest"], state["lowest"]
        self.highest = -math.inf if highest is None else _as_float(highest)
        self.lowest = math.inf if lowest is None else _as_float(lowest)
        self.level = _nan_if_none(state["level"])
        self.ready = self.model.seen >= self.warm


class _SeasonalView(_BlockView):
    """Block means minus the mean of the same time of day on earlier days.

    The time of day comes from the timestamp of the sample completing a block
    (UTC; a constant time-zone offset does not matter). Each of `slots` slots
    keeps an exponential average of its block means, day after day, so a
    series with a daily cycle has small residuals until a day breaks the
    cycle. Blocks without a finite timestamp are skipped.

    The view only speaks for series that have a daily cycle: while the
    residuals' mean square is at least half that of the block means around
    their recent level (the profile explains less than half the variance), it
    keeps learning but reports nothing. On series without a cycle its
    surprises would repeat what the block-mean resolutions already say, as
    false alarms more often than not.
    """

    __slots__ = (
        "level",
        "level_square",
        "period",
        "profile",
        "rate",
        "residual_square",
        "slot_seconds",
        "warm",
    )

    def __init__(self, config: AnomalyConfig, days: int = 1) -> None:
        super().__init__(config.block_context_order, config.seasonal_block, config)
        slots = config.seasonal_slots * days
        # two days of residuals for the daily profile (their range needs that
        # long to settle), one week for the weekly one, and at least as many
        # symbols as the warm-up makes
        periods = 2 if days == 1 else 1
        self.warm = max(periods * slots, -(-config.warmup_samples // self.block))
        self.rate = config.seasonal_rate
        self.period = _DAY * days
        self.slot_seconds = _DAY / config.seasonal_slots
        self.profile = array("d", [math.nan]) * slots  # floats, not objects: 8 bytes a slot
        self.level = math.nan  # exponential average of block means (about a day)
        self.level_square = 0.0  # mean square of block means around that level
        self.residual_square = 0.0  # mean square of the residuals

    @property
    def ready(self) -> bool:
        """Past its own warm-up (its first residuals come a day after the start)."""
        return self.model.seen >= self.warm

    def complete(
        self, ring: array[float], n: int, timestamp: float, rival: float | None = None
    ) -> float | None:
        """Surprisal in bits of the residual of the block ending with sample n (at `timestamp`).

        None when there is nothing to say.
        The view speaks while its residuals' mean square is below half of
        `rival` (by default the block means' own spread around their level;
        the weekly view passes the daily view's residual mean square, so it
        speaks only when the week explains what the day does not).
        """
        total, filled = self.carry, self.carried
        for x in self._take(ring, n):
            total += x
            filled += 1
        mean = total / filled
        if not math.isfinite(timestamp):
            return None
        level = self.level
        self.level = mean if math.isnan(level) else level + _SEASON_LEVEL_WEIGHT * (mean - level)
        slot = min(int(timestamp % self.period // self.slot_seconds), len(self.profile) - 1)
        usual = self.profile[slot]
        if math.isnan(usual):
            self.profile[slot] = mean
            return None
        residual = mean - usual
        # an odd day moves the profile by at most three typical residuals, so
        # that the next normal day does not look odd in turn
        limit = math.inf
        if self.ready and self.residual_square > 0:
            limit = _SEASON_CLIP * math.sqrt(self.residual_square)
        self.profile[slot] = usual + self.rate * max(-limit, min(limit, residual))
        if not math.isnan(level):
            w = _SEASON_SQUARE_WEIGHT
            self.residual_square += w * (residual * residual - self.residual_square)
            self.level_square += w * ((mean - level) ** 2 - self.level_square)
        bits = self.code(residual)
        spread = self.level_square if rival is None else rival
        return bits if self.residual_square < 0.5 * spread else None

    def to_state(self, ring: array[float], seen: int) -> dict[str, object]:
        total, filled = self.pending(ring, seen)
        return {
            **self._view_state(),
            "total": total,
            "filled": filled,
            "profile": [_finite_or_none(p) for p in self.profile],
            "level": _finite_or_none(self.level),
            "level_square": self.level_square,
            "residual_square": self.residual_square,
        }

    def load_state(self, state: dict[str, object], seen: int) -> None:
        self._load_view(state)
        self.start_at(seen, _as_float(state["total"]), _as_int(state["filled"]))
        profile = [_nan_if_none(p) for p in _as_list(state["profile"])]
        if len(profile) != len(self.profile):
            raise ValueError("bad detector state: seasonal profile")
        self.profile = array("d", profile)
        self.level = _nan_if_none(state["level"])
        self.level_square = _as_float(state["level_square"])
        self.residual_square = _as_float(state["residual_square"])


class _RunView:
    """How long the value has not changed, against the unchanged runs seen before.

    A metric that moved all the time and now repeats one value exactly is
    stuck (a dead exporter, a frozen gauge): its values are unremarkable one by
    one, so no symbol view sees it. Under exchangeable runs, the chance that
    the current run outlasts all `runs` runs before it is 1 / (runs + 1), and
    outlasting the longest by a factor f costs log2(f) more bits. The view
    speaks once per run, and only for runs of at least `_RUN_MIN` samples, so
    a moment's standstill is not an event. It only watches continuous metrics,
    whose values never repeat exactly (outside the current run): a metric
    that has repeated a value is a count or a rounded gauge (nights of zero
    tweets, an idle disk), for which long unchanged stretches are normal. A
    metric that never changed (a flat line) has no runs to compare with:
    silent.
    """

    __slots__ = ("alert_bits", "fired", "last", "longest", "run", "runs", "samples")

    def __init__(self, alert_bits: float) -> None:
        self.alert_bits = alert_bits
        self.last = math.nan
        self.run = 0
        self.longest = 0
        self.runs = 0
        self.samples = 0
        self.fired = False

    def update(self, x: float) -> float:
        """Bits for the current run of equal values (0 while unremarkable)."""
        if self.samples < _RUN_MEMORY:
            self.samples += 1
        else:  # forget half, keeping the ratio of runs to samples
            self.samples, self.runs = _RUN_MEMORY // 2, self.runs // 2
        if x != self.last:
            if self.run:
                self.longest = max(self.longest, self.run)
                self.runs += 1
            self.last, self.run, self.fired = x, 1, False
            return 0.0
        self.run += 1
        if self.fired or not self.runs or self.run < _RUN_MIN or self.run <= self.longest:
            return 0.0
        # only for a metric whose values have not repeated outside this run: every
        # sample starts a run or repeats one, so those repeats are samples - runs - run
        if self.samples - self.runs - self.run > 0:
            return 0.0
        bits = math.log2(self.runs + 1) + math.log2(self.run / self.longest)
        self.fired = bits >= self.alert_bits
        return bits

    def to_state(self) -> dict[str, object]:
        return {
            "last": _finite_or_none(self.last),
            "run": self.run,
            "longest": self.longest,
            "runs": self.runs,
            "samples": self.samples,
            "fired": self.fired,
        }

    def load_state(self, state: dict[str, object]) -> None:
        self.last = _nan_if_none(state["last"])
        self.run = _as_int(state["run"])
        self.longest = _as_int(state["longest"])
        self.runs = _as_int(state["runs"])
        self.samples = _as_int(state["samples"])
        fired = state["fired"]
        if not isinstance(fired, bool):
            raise ValueError("bad detector state: fired")
        self.fired = fired
