"""Streaming anomaly detector for one metric of one service.

The detector treats a metric as a message and asks how many bits an adaptive
compressor needs to encode the newest value given everything before it. Values
that cost many bits are surprising; surprising values are anomalies.

Pipeline for each value, strictly causal (each value is scored before it is
learned from). The value feeds several *views*, each a stream of symbols::

    raw value, and block means of 24 and 96 samples  (what the value is)
    extreme of each block of 3 samples              (the same, seen in blocks)
    block mean of 24 samples minus the mean of the
      same time of day on earlier days              (how today differs)

    view -> symbol: one of `levels` equal-width bins of the view's learned
            range, or an escape symbol "below"/"above" plus Elias-gamma bits
            for how far outside the range it lies
         -> bits = -log2 P(symbol | last symbols), P a Bayesian mixture of
            Markov models of order 0..k (Dirichlet-smoothed counts, mixture
            weights from discounted past predictive performance)

The raw bits must be *confirmed*: at the end of each 3-sample block they are
blended with the bits of the block-extreme view, which sees the same values
through a different model, so that surprise only one model feels (most false
alarms) is halved. Raw surprise twice the alert level needs no confirmation.
The score is the largest of the confirmed bits and the bits of the coarse and
seasonal views, after one-alert-per-incident de-duplication, mapped to [0, 1].

Every structure is bounded: counts live in fixed-size 16-bit `array` buffers
(about 5.4 KB per detector with the defaults, about 12 KB with Python's object
overhead) and are halved regularly so that old behaviour fades. An update
costs a few array look-ups and logarithms: about 8 microseconds in CPython.

NAB results and the things that did not work are in ``docs/anomaly.md``.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["AnomalyConfig", "AnomalyDetector", "score_csv", "score_series"]

_STATE_VERSION = 2
_COUNT_MAX = 65535  # counts are stored as unsigned 16-bit integers ...
_COUNT_UNIT = 4  # ... in quarters, so that halving keeps fractions down to 1/4
_DAY = 86400.0
_LEVEL_WEIGHT = 0.1  # EWMA weight of the level that tells a block's high from its low extreme
_SEASON_LEVEL_WEIGHT = 0.1  # EWMA weight of the recent level the seasonal view compares with
_SEASON_SQUARE_WEIGHT = 0.02  # EWMA weight of its mean squares (about 50 blocks)
_SEASON_CLIP = 3.0  # largest profile update, in root-mean-square residuals


@dataclass(frozen=True)
class AnomalyConfig:
    """Every knob of the detector; the defaults are one setting for all metrics."""

    # Equal-width bins inside the learned [low, high] range. 10 resolves a level
    # change of ~10% of the range; 8 and 12 scored 4-5 NAB points lower.
    levels: int = 10
    # Highest Markov order of the raw-resolution symbol model. Order 2 sees
    # short shapes (spike up and back down); order 3 was noisier on NAB.
    context_order: int = 2
    # Sample counts per block for each resolution of block means. 1 (the raw
    # values; the first resolution is the one confirmation applies to) catches
    # spikes and sharp shifts; 24 and 96 (two and eight hours at 5-minute
    # sampling) catch slow drifts and changes of spike density invisible
    # sample by sample.
    block_sizes: tuple[int, ...] = (1, 24, 96)
    # Markov order used for every view other than the raw one (fewer symbols).
    block_context_order: int = 1
    # Dirichlet pseudo-count per symbol; small values trust observed counts,
    # which keeps familiar noise cheap and unseen symbols expensive.
    prior: float = 0.2
    # Discount of the Bayesian mixture weights per symbol (memory of ~50
    # symbols), so the mixture follows whichever order predicts well lately.
    weight_discount: float = 0.98
    # Symbols between halvings of all counts: old behaviour fades with a
    # half-life of about this many symbols (at most 8000, so counts fit 16 bits).
    halve_every: int = 2000
    # Relative shrink of the learned range per symbol. Slow on purpose: a new
    # record must stay remarkable for days (1e-4 and 1e-5 scored within a point).
    range_shrink: float = 3e-5
    # Weight of the Elias-gamma code of how many bin widths a value lies
    # outside the range, so that farther is more surprising. 0 scores 49 on
    # NAB, 1 scores 64, 2 scores 71 (before the confirmation and seasonal views).
    magnitude_bits: float = 2.0
    # Confirmation: raw surprise is blended, once per block of this many
    # samples, with the surprise of the block's extreme value (its maximum or
    # minimum, whichever is farther from the recent level) under a model of
    # its own. 0 turns confirmation off (raw bits count as they are).
    confirm_block: int = 3
    # Weight of the block-extreme view in that blend (the raw bits get the
    # rest). Raw bits of at least twice `alert_bits` count without confirmation.
    confirm_weight: float = 0.6
    # Seasonal view: block means of this many samples, minus the mean of the
    # same time-of-day slot on earlier days (from the timestamps). It sees a
    # daily rise that did not happen. 0 turns it off.
    seasonal_block: int = 24
    # Time-of-day slots per day of the seasonal profile, and the weight of the
    # newest day in it (an exponential average over the last ~5 days).
    seasonal_slots: int = 12
    seasonal_rate: float = 0.2
    # Surprisal that counts as an alert; the score is bits / (bits + alert_bits),
    # so an alert is a score of 0.5. 11 bits is roughly "once in 2000 symbols".
    alert_bits: float = 11.0
    # After an alert, stay quiet (score 0) for this many samples: one alert
    # per incident. Letting a bigger surprise through scored ~1 NAB point less.
    rest_samples: int = 100
    # Samples scored 0 while the first statistics are gathered. The confirming
    # and seasonal views also stay silent until they have coded as many
    # symbols as this many samples make.
    warmup_samples: int = 150

    def __post_init__(self) -> None:
        """Reject settings the detector cannot run with."""
        if not 2 <= self.levels <= 64:
            raise ValueError("levels must be between 2 and 64")
        if not 0 <= self.context_order <= 3 or not 0 <= self.block_context_order <= 3:
            raise ValueError("context orders must be between 0 and 3")
        if not self.block_sizes or any(b < 1 for b in self.block_sizes):
            raise ValueError("block_sizes must be positive integers")
        if self.prior <= 0 or not 0 < self.weight_discount <= 1:
            raise ValueError("prior and weight_discount must be positive")
        if not 1 <= self.halve_every <= 8000:
            raise ValueError("halve_every must be between 1 and 8000")
        if self.confirm_block < 0 or self.seasonal_block < 0 or self.seasonal_slots < 1:
            raise ValueError("confirm_block, seasonal_block and seasonal_slots out of range")
        if not 0 <= self.confirm_weight <= 1 or not 0 < self.seasonal_rate <= 1:
            raise ValueError("confirm_weight and seasonal_rate must be fractions")
        if self.alert_bits <= 0 or self.rest_samples < 0 or self.warmup_samples < 0:
            raise ValueError("alert_bits must be positive; rest and warm-up not negative")


_DEFAULT_CONFIG = AnomalyConfig()
# Version 1 states carry the configuration of the first detector, which had no
# confirmation or seasonal view and alerted at 10 bits. A state saved with that
# default configuration is upgraded to today's default.
_V1_DEFAULTS: dict[str, object] = {
    "levels": 10,
    "context_order": 2,
    "block_sizes": [1, 24, 96],
    "block_context_order": 1,
    "prior": 0.2,
    "weight_discount": 0.98,
    "halve_every": 2000,
    "range_shrink": 3e-05,
    "magnitude_bits": 2.0,
    "alert_bits": 10.0,
    "rest_samples": 100,
    "warmup_samples": 150,
}


def _elias_gamma_bits(k: int) -> int:
    """Length of the Elias-gamma code of a positive integer."""
    return 2 * (k.bit_length() - 1) + 1


class _RangeQuantiser:
    """Maps a value to a bin of the slowly shrinking range of past values."""

    __slots__ = ("high", "levels", "low", "magnitude_bits", "shrink")

    def __init__(self, levels: int, shrink: float, magnitude_bits: float) -> None:
        self.levels = levels
        self.shrink = shrink
        self.magnitude_bits = magnitude_bits
        self.low = math.nan
        self.high = math.nan

    @property
    def alphabet(self) -> int:
        """Bins plus the two escape symbols (below, above)."""
        return self.levels + 2

    def encode(self, x: float) -> tuple[int, float]:
        """Symbol for x and the extra bits spent on an out-of-range distance."""
        if math.isnan(self.low):
            return 0, 0.0
        width = (self.high - self.low) / self.levels
        if x > self.high:
            return self.levels + 1, self._distance_bits(x - self.high, width)
        if x < self.low:
            return self.levels, self._distance_bits(self.low - x, width)
        if width <= 0:
            return 0, 0.0
        return min(self.levels - 1, int((x - self.low) / width)), 0.0

    def _distance_bits(self, distance: float, width: float) -> float:
        if width <= 0:
            return 0.0
        steps = min(distance / width, 1e300)
        return self.magnitude_bits * _elias_gamma_bits(max(1, math.ceil(steps)))

    def learn(self, x: float) -> None:
        """Widen the range to x, then let it shrink a little towards recent values."""
        if math.isnan(self.low):
            self.low = self.high = x
            return
        span = self.high - self.low
        self.high = max(x, self.high - self.shrink * span)
        self.low = min(x, self.low + self.shrink * span)


class _ContextModel:
    """Bayesian mixture of Markov models of order 0..k over a small alphabet."""

    __slots__ = (
        "alphabet",
        "counts",
        "discount",
        "halve_every",
        "history",
        "log_weights",
        "order",
        "prior",
        "seen",
        "totals",
    )

    def __init__(self, alphabet: int, order: int, config: AnomalyConfig) -> None:
        self.alphabet = alphabet
        self.order = order
        self.prior = config.prior * _COUNT_UNIT
        self.discount = config.weight_discount
        self.halve_every = config.halve_every
        # counts[k][ctx * alphabet + symbol]; totals[k][ctx]; ctx indexes the
        # last k symbols in base `alphabet`.
        self.counts = [array("H", bytes(2 * alphabet ** (k + 1))) for k in range(order + 1)]
        self.totals = [array("H", bytes(2 * alphabet**k)) for k in range(order + 1)]
        self.log_weights = [0.0] * (order + 1)
        self.history: list[int] = []
        self.seen = 0

    def surprisal(self, symbol: int) -> float:
        """Bits to encode `symbol` given the history, then learn from it.

        One pass over the orders: each order's probability of `symbol` in its
        context, mixed by the weights, then the weight and the count updated.
        Orders whose context is longer than the history so far predict
        uniformly and learn nothing.
        """
        a = self.alphabet
        prior = self.prior
        prior_total = prior * a
        discount = self.discount
        log_weights = self.log_weights
        history = self.history
        known = len(history)
        top = max(log_weights)
        mixed = 0.0
        norm = 0.0
        ctx = 0
        for k, (counts, totals) in enumerate(zip(self.counts, self.totals, strict=True)):
            weight = math.exp(log_weights[k] - top)
            norm += weight
            if k > known:
                q = 1.0 / a
            else:
                if k:
                    ctx = ctx * a + history[-k]
                slot = ctx * a + symbol
                total = totals[ctx]
                q = (counts[slot] + prior) / (total + prior_total)
                if total <= _COUNT_MAX - _COUNT_UNIT:
                    counts[slot] += _COUNT_UNIT
                    totals[ctx] = total + _COUNT_UNIT
            mixed += weight * q
            log_weights[k] = discount * log_weights[k] + math.log(q)
        if self.order:
            history.append(symbol)
            if known >= self.order:
                del history[0]
        self.seen += 1
        if self.seen % self.halve_every == 0:
            self._halve()
        return -math.log2(mixed / norm)

    def _halve(self) -> None:
        """Forget half of everything, keeping totals equal to row sums."""
        for k in range(self.order + 1):
            counts = self.counts[k]
            for i, c in enumerate(counts):
                if c:
                    counts[i] = c >> 1
            totals = self.totals[k]
            a = self.alphabet
            for ctx in range(len(totals)):
                totals[ctx] = sum(counts[ctx * a : (ctx + 1) * a])

    def to_state(self) -> dict[str, object]:
        return {
            "counts": [c.tolist() for c in self.counts],
            "log_weights": list(self.log_weights),
            "history": list(self.history),
            "seen": self.seen,
        }

    def load_state(self, state: dict[str, object]) -> None:
        counts = _as_list(state["counts"])
        if len(counts) != self.order + 1:
            raise ValueError("bad detector state: context orders")
        for k, row in enumerate(counts):
            self.counts[k] = array("H", (_as_int(c) for c in _as_list(row)))
            if len(self.counts[k]) != self.alphabet ** (k + 1):
                raise ValueError("bad detector state: count table size")
            a = self.alphabet
            self.totals[k] = array(
                "H", (sum(self.counts[k][i * a : (i + 1) * a]) for i in range(a**k))
            )
        self.log_weights = [_as_float(w) for w in _as_list(state["log_weights"])]
        if len(self.log_weights) != self.order + 1:
            raise ValueError("bad detector state: mixture weights")
        self.history = [_as_int(s) for s in _as_list(state["history"])]
        if len(self.history) > self.order or not all(0 <= s < self.alphabet for s in self.history):
            raise ValueError("bad detector state: history")
        self.seen = _as_int(state["seen"])


class _View:
    """One stream of symbols: a quantiser and a context model."""

    __slots__ = ("model", "quantiser")

    def __init__(self, order: int, config: AnomalyConfig) -> None:
        self.quantiser = _RangeQuantiser(config.levels, config.range_shrink, config.magnitude_bits)
        self.model = _ContextModel(self.quantiser.alphabet, order, config)

    def code(self, x: float) -> float:
        """Bits to encode x, then learn it."""
        symbol, extra = self.quantiser.encode(x)
        bits = self.model.surprisal(symbol) + extra
        self.quantiser.learn(x)
        return bits

    def _view_state(self) -> dict[str, object]:
        return {
            "low": _finite_or_none(self.quantiser.low),
            "high": _finite_or_none(self.quantiser.high),
            "model": self.model.to_state(),
        }

    def _load_view(self, state: dict[str, object]) -> None:
        self.quantiser.low = _nan_if_none(state["low"])
        self.quantiser.high = _nan_if_none(state["high"])
        model = state["model"]
        if not isinstance(model, dict):
            raise ValueError("bad detector state: model")
        self.model.load_state(model)


class _Resolution(_View):
    """One time scale: block means of the values."""

    __slots__ = ("block", "filled", "total")

    def __init__(self, block: int, config: AnomalyConfig) -> None:
        super().__init__(config.context_order if block == 1 else config.block_context_order, config)
        self.block = block
        self.total = 0.0
        self.filled = 0

    def update(self, x: float) -> float:
        """Surprisal in bits when a block completes, else 0 (no new evidence)."""
        self.total += x
        self.filled += 1
        if self.filled < self.block:
            return 0.0
        mean = self.total / self.filled
        self.total = 0.0
        self.filled = 0
        return self.code(mean)

    def to_state(self) -> dict[str, object]:
        return {**self._view_state(), "total": self.total, "filled": self.filled}

    def load_state(self, state: dict[str, object]) -> None:
        self._load_view(state)
        self.total = _as_float(state["total"])
        self.filled = _as_int(state["filled"])


class _ExtremeView(_View):
    """Blocks of a few samples, each seen through its most extreme value.

    The extreme is the block's maximum or its minimum, whichever lies farther
    from the recent level (an exponential average of block means), so that a
    spike in either direction survives the blocking.
    """

    __slots__ = ("block", "filled", "highest", "level", "lowest", "total", "warm")

    def __init__(self, block: int, config: AnomalyConfig) -> None:
        super().__init__(config.block_context_order, config)
        self.block = block
        self.warm = -(-config.warmup_samples // block)
        self.total = 0.0
        self.filled = 0
        self.highest = -math.inf
        self.lowest = math.inf
        self.level = math.nan

    @property
    def ready(self) -> bool:
        """Past its own warm-up (matters for a view added to an older detector)."""
        return self.model.seen >= self.warm

    def update(self, x: float) -> float | None:
        """Surprisal in bits of the block's extreme when a block completes, else None."""
        self.total += x
        self.filled += 1
        self.highest = max(self.highest, x)
        self.lowest = min(self.lowest, x)
        if self.filled < self.block:
            return None
        mean = self.total / self.filled
        level = self.level
        level = mean if math.isnan(level) else level + _LEVEL_WEIGHT * (mean - level)
        self.level = level
        extreme = self.highest if self.highest - level >= level - self.lowest else self.lowest
        self.total = 0.0
        self.filled = 0
        self.highest = -math.inf
        self.lowest = math.inf
        return self.code(extreme)

    def to_state(self) -> dict[str, object]:
        return {
            **self._view_state(),
            "total": self.total,
            "filled": self.filled,
            "highest": _finite_or_none(self.highest),
            "lowest": _finite_or_none(self.lowest),
            "level": _finite_or_none(self.level),
        }

    def load_state(self, state: dict[str, object]) -> None:
        self._load_view(state)
        self.total = _as_float(state["total"])
        self.filled = _as_int(state["filled"])
        highest, lowest = state["highest"], state["lowest"]
        self.highest = -math.inf if highest is None else _as_float(highest)
        self.lowest = math.inf if lowest is None else _as_float(lowest)
        self.level = _nan_if_none(state["level"])


class _SeasonalView(_View):
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
        "block",
        "filled",
        "level",
        "level_square",
        "profile",
        "rate",
        "residual_square",
        "slot_seconds",
        "total",
        "warm",
    )

    def __init__(self, config: AnomalyConfig) -> None:
        super().__init__(config.block_context_order, config)
        self.block = config.seasonal_block
        # two days of residuals (their range needs that long to settle), and at
        # least as many symbols as the warm-up makes
        self.warm = max(2 * config.seasonal_slots, -(-config.warmup_samples // self.block))
        self.rate = config.seasonal_rate
        self.slot_seconds = _DAY / config.seasonal_slots
        self.profile = [math.nan] * config.seasonal_slots
        self.total = 0.0
        self.filled = 0
        self.level = math.nan  # exponential average of block means (about a day)
        self.level_square = 0.0  # mean square of block means around that level
        self.residual_square = 0.0  # mean square of the residuals

    @property
    def ready(self) -> bool:
        """Past its own warm-up (its first residuals come a day after the start)."""
        return self.model.seen >= self.warm

    def update(self, x: float, timestamp: float) -> float | None:
        """Surprisal in bits of the block's residual, None when there is nothing to say."""
        self.total += x
        self.filled += 1
        if self.filled < self.block:
            return None
        mean = self.total / self.filled
        self.total = 0.0
        self.filled = 0
        if not math.isfinite(timestamp):
            return None
        level = self.level
        self.level = mean if math.isnan(level) else level + _SEASON_LEVEL_WEIGHT * (mean - level)
        slot = min(int(timestamp % _DAY // self.slot_seconds), len(self.profile) - 1)
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
        return bits if self.residual_square < 0.5 * self.level_square else None

    def to_state(self) -> dict[str, object]:
        return {
            **self._view_state(),
            "total": self.total,
            "filled": self.filled,
            "profile": [_finite_or_none(p) for p in self.profile],
            "level": _finite_or_none(self.level),
            "level_square": self.level_square,
            "residual_square": self.residual_square,
        }

    def load_state(self, state: dict[str, object]) -> None:
        self._load_view(state)
        self.total = _as_float(state["total"])
        self.filled = _as_int(state["filled"])
        profile = [_nan_if_none(p) for p in _as_list(state["profile"])]
        if len(profile) != len(self.profile):
            raise ValueError("bad detector state: seasonal profile")
        self.profile = profile
        self.level = _nan_if_none(state["level"])
        self.level_square = _as_float(state["level_square"])
        self.residual_square = _as_float(state["residual_square"])


class AnomalyDetector:
    """Streaming detector for one metric of one service."""

    __slots__ = (
        "_alert_value",
        "_extreme",
        "_last_alert",
        "_last_timestamp",
        "_peak_bits",
        "_peak_value",
        "_resolutions",
        "_seasonal",
        "_seen",
        "config",
    )

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or _DEFAULT_CONFIG
        self._resolutions = [_Resolution(b, self.config) for b in self.config.block_sizes]
        block = self.config.confirm_block
        self._extreme = _ExtremeView(block, self.config) if block else None
        self._seasonal = _SeasonalView(self.config) if self.config.seasonal_block else None
        self._seen = 0
        self._last_alert = -1  # sample index of the latest alert, -1: none yet
        self._last_timestamp = -math.inf
        # the most surprising raw value of the open confirmation block, and its bits
        self._peak_bits = 0.0
        self._peak_value = math.nan
        self._alert_value = math.nan

    @property
    def samples(self) -> int:
        """Values learned from so far (non-finite ones are not counted)."""
        return self._seen

    def normal_range(self) -> tuple[float, float] | None:
        """The range of raw values learned so far (slowly shrinking), None before any."""
        quantiser = self._resolutions[0].quantiser
        if math.isnan(quantiser.low):
            return None
        return quantiser.low, quantiser.high

    @property
    def last_timestamp(self) -> float | None:
        """Latest timestamp fed so far (lets the owner retire stale detectors)."""
        return _finite_or_none(self._last_timestamp)

    @property
    def alert_value(self) -> float | None:
        """The value the latest alert is about, None before any alert.

        A confirmed alert comes at the end of a confirmation block, up to
        ``confirm_block - 1`` samples after the value that caused it: this is
        the most surprising value of that block, not necessarily the latest.
        For an alert of a block-mean or seasonal view it is the latest value.
        """
        return _finite_or_none(self._alert_value)

    def update(self, value: float, timestamp: float) -> float:
        """Score `value` (seen at unix time `timestamp`) in [0, 1], then learn it.

        Non-finite values are not learned from and score 0: a missing reading
        is the probe's problem, not the metric's. The model counts samples;
        timestamps only place blocks in the time of day for the seasonal view,
        so irregular, repeated or out-of-order timestamps are fine.
        """
        if not math.isfinite(value):
            return 0.0
        if math.isfinite(timestamp):
            self._last_timestamp = max(self._last_timestamp, timestamp)
        resolutions = self._resolutions
        bits, cause = self._confirmed(resolutions[0].update(value), value)
        for resolution in resolutions[1:]:
            coarse_bits = resolution.update(value)
            if coarse_bits > bits:
                bits, cause = coarse_bits, value
        seasonal = self._seasonal
        if seasonal is not None:
            residual_bits = seasonal.update(value, timestamp)
            if residual_bits is not None and residual_bits > bits and seasonal.ready:
                bits, cause = residual_bits, value
        self._seen += 1
        if self._seen <= self.config.warmup_samples:
            return 0.0
        bits = self._deduplicate(bits)
        if self._last_alert == self._seen:
            self._alert_value = cause
        return self._score(bits)

    def _confirmed(self, raw_bits: float, value: float) -> tuple[float, float]:
        """Raw bits after confirmation by the block-extreme view, and the value they are about."""
        extreme = self._extreme
        if extreme is None:
            return raw_bits, value
        if raw_bits >= self._peak_bits:
            self._peak_bits, self._peak_value = raw_bits, value
        extreme_bits = extreme.update(value)
        if not extreme.ready:  # a view added to an older detector: raw bits as they were
            self._peak_bits, self._peak_value = 0.0, math.nan
            return raw_bits, value
        if extreme_bits is None:
            return raw_bits - self.config.alert_bits, value
        peak_bits, peak_value = self._peak_bits, self._peak_value
        self._peak_bits, self._peak_value = 0.0, math.nan
        weight = self.config.confirm_weight
        blended = (1.0 - weight) * peak_bits + weight * extreme_bits
        unconfirmed = raw_bits - self.config.alert_bits
        if unconfirmed > blended:
            return unconfirmed, value
        return blended, peak_value

    def _deduplicate(self, bits: float) -> float:
        """One alert per incident: after an alert, stay quiet for `rest_samples`."""
        if self._last_alert >= 0 and self._seen - self._last_alert <= self.config.rest_samples:
            return 0.0
        if bits >= self.config.alert_bits:
            self._last_alert = self._seen
        return bits

    def _score(self, bits: float) -> float:
        return bits / (bits + self.config.alert_bits) if bits > 0 else 0.0

    def to_state(self) -> dict[str, object]:
        """JSON-serialisable snapshot; `from_state` continues exactly from here."""
        extreme, seasonal = self._extreme, self._seasonal
        return {
            "version": _STATE_VERSION,
            "config": {**asdict(self.config), "block_sizes": list(self.config.block_sizes)},
            "seen": self._seen,
            "last_alert": self._last_alert,
            "last_timestamp": _finite_or_none(self._last_timestamp),
            "peak_bits": self._peak_bits,
            "peak_value": _finite_or_none(self._peak_value),
            "alert_value": _finite_or_none(self._alert_value),
            "resolutions": [r.to_state() for r in self._resolutions],
            "extreme": None if extreme is None else extreme.to_state(),
            "seasonal": None if seasonal is None else seasonal.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> AnomalyDetector:
        """Rebuild a detector from `to_state` output.

        States of the first version (no confirmation or seasonal view) load
        too: their raw and block-mean resolutions carry on, the new views start
        empty and stay silent until they have warmed up. A first-version
        state with the default configuration of the time gets today's default.
        Anything else raises ValueError, whatever is wrong with it.
        """
        if not isinstance(state, dict):
            raise ValueError("bad detector state: expected an object")
        try:
            return cls._from_state(state)
        except (KeyError, TypeError, AttributeError, IndexError, OverflowError) as exc:
            raise ValueError(f"bad detector state: {exc!r}") from exc

    @classmethod
    def _from_state(cls, state: dict[str, object]) -> AnomalyDetector:
        version = state.get("version")
        if version not in (1, _STATE_VERSION):
            raise ValueError("unsupported detector state version")
        raw = state["config"]
        if not isinstance(raw, dict):
            raise ValueError("bad detector state: config")
        if version == 1 and raw == _V1_DEFAULTS:
            config = _DEFAULT_CONFIG
        else:
            blocks = tuple(_as_int(b) for b in _as_list(raw["block_sizes"]))
            config = AnomalyConfig(**{**raw, "block_sizes": blocks})
        detector = cls(config)
        detector._seen = _as_int(state["seen"])
        detector._last_alert = _as_int(state["last_alert"])
        last = state["last_timestamp"]
        detector._last_timestamp = -math.inf if last is None else _as_float(last)
        for resolution, sub in zip(
            detector._resolutions, _as_list(state["resolutions"]), strict=True
        ):
            resolution.load_state(_as_dict(sub))
        if version == 1:
            return detector
        detector._peak_bits = _as_float(state["peak_bits"])
        detector._peak_value = _nan_if_none(state["peak_value"])
        detector._alert_value = _nan_if_none(state["alert_value"])
        for view, sub in (
            (detector._extreme, state["extreme"]),
            (detector._seasonal, state["seasonal"]),
        ):
            if (view is None) != (sub is None):
                raise ValueError("bad detector state: views do not match the configuration")
            if view is not None:
                view.load_state(_as_dict(sub))
        return detector


def score_series(
    timestamps: Sequence[float],
    values: Sequence[float],
    config: AnomalyConfig | None = None,
) -> list[float]:
    """Scores of a whole series, each computed from the values before it only."""
    if len(timestamps) != len(values):
        raise ValueError("timestamps and values differ in length")
    detector = AnomalyDetector(config)
    return [detector.update(float(v), float(t)) for t, v in zip(timestamps, values, strict=True)]


def score_csv(in_path: Path, out_path: Path, config: AnomalyConfig | None = None) -> int:
    """Score a NAB-format CSV (timestamp,value) into timestamp,value,anomaly_score.

    Timestamps are "YYYY-MM-DD HH:MM:SS" in UTC. Unparseable values score 0.
    Returns the number of data rows written.
    """
    with in_path.open(newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    if not rows:
        raise ValueError(f"{in_path}: empty file")
    header = [h.strip() for h in rows[0]]
    t_col, v_col = header.index("timestamp"), header.index("value")
    detector = AnomalyDetector(config)
    with out_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for row in rows[1:]:
            stamp, text = row[t_col].strip(), row[v_col].strip()
            score = detector.update(_parse_float(text), _parse_timestamp(stamp))
            writer.writerow([stamp, text, repr(score)])
    return len(rows) - 1


def _parse_timestamp(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text.replace("Z", ""))
    except ValueError:
        return math.nan
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


def _finite_or_none(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _nan_if_none(x: object) -> float:
    return math.nan if x is None else _as_float(x)


def _as_float(x: object) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise ValueError(f"bad detector state: expected a number, got {x!r}")
    return float(x)


def _as_int(x: object) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"bad detector state: expected an integer, got {x!r}")
    return x


def _as_dict(x: object) -> dict[str, object]:
    if not isinstance(x, dict):
        raise ValueError(f"bad detector state: expected an object, got {type(x).__name__}")
    return x


def _as_list(x: object) -> list[object]:
    if not isinstance(x, list):
        raise ValueError(f"bad detector state: expected a list, got {type(x).__name__}")
    return x
