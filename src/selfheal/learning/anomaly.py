"""Streaming anomaly detector for one metric of one service.

The detector treats a metric as a message and asks how many bits an adaptive
compressor needs to encode the newest value given everything before it. Values
that cost many bits are surprising; surprising values are anomalies.

Pipeline for each value, strictly causal (each value is scored before it is
learned from)::

    value -> block mean (one per resolution: 1, 24 and 96 samples)
          -> symbol: one of `levels` equal-width bins of the learned range,
             or an escape symbol "below"/"above" plus Elias-gamma bits for
             how far outside the range it lies
          -> bits = -log2 P(symbol | last symbols), P a Bayesian mixture of
             Markov models of order 0..k (Dirichlet-smoothed counts, mixture
             weights from discounted past predictive performance)
    max(bits over resolutions) -> alert de-duplication -> score in [0, 1]

Every structure is bounded: counts live in fixed-size 16-bit `array` buffers
(under 5 KB per detector with the defaults, about 9 KB with Python's object
overhead) and are halved regularly so that old behaviour fades. An update
costs a few array look-ups and logarithms: about 7 microseconds in CPython.

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

_STATE_VERSION = 1
_COUNT_MAX = 65535  # counts are stored as unsigned 16-bit integers ...
_COUNT_UNIT = 4  # ... in quarters, so that halving keeps fractions down to 1/4


@dataclass(frozen=True)
class AnomalyConfig:
    """Every knob of the detector; the defaults are one setting for all metrics."""

    # Equal-width bins inside the learned [low, high] range. 10 resolves a level
    # change of ~10% of the range; 8 and 12 scored 4-5 NAB points lower.
    levels: int = 10
    # Highest Markov order of the raw-resolution symbol model. Order 2 sees
    # short shapes (spike up and back down); order 3 was noisier on NAB.
    context_order: int = 2
    # Sample counts per block for each resolution. 1 catches spikes and sharp
    # shifts; 24 and 96 (two and eight hours at 5-minute sampling) catch slow
    # drifts and changes of spike density invisible sample by sample. Without
    # the coarse ones NAB drops by 6 points; they cost almost no CPU.
    block_sizes: tuple[int, ...] = (1, 24, 96)
    # Markov order used for the coarse resolutions (fewer symbols to learn from).
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
    # outside the range, so that farther is more surprising. The most important
    # knob: 0 scores 49 on NAB, 1 scores 64, 2 scores 71.
    magnitude_bits: float = 2.0
    # Surprisal that counts as an alert; the score is bits / (bits + alert_bits),
    # so an alert is a score of 0.5. 10 bits is roughly "once in 1000 symbols".
    alert_bits: float = 10.0
    # After an alert, stay quiet (score 0) for this many samples: one alert
    # per incident. Letting a bigger surprise through scored ~1 NAB point less.
    rest_samples: int = 100
    # Samples scored 0 while the first statistics are gathered.
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
        if self.alert_bits <= 0 or self.rest_samples < 0 or self.warmup_samples < 0:
            raise ValueError("alert_bits must be positive; rest and warm-up not negative")


_DEFAULT_CONFIG = AnomalyConfig()


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
        for k, row in enumerate(counts):
            self.counts[k] = array("H", (_as_int(c) for c in _as_list(row)))
            a = self.alphabet
            self.totals[k] = array(
                "H", (sum(self.counts[k][i * a : (i + 1) * a]) for i in range(a**k))
            )
        self.log_weights = [_as_float(w) for w in _as_list(state["log_weights"])]
        self.history = [_as_int(s) for s in _as_list(state["history"])]
        self.seen = _as_int(state["seen"])


class _Resolution:
    """One time scale: block means, their quantiser and their context model."""

    __slots__ = ("block", "filled", "model", "quantiser", "total")

    def __init__(self, block: int, config: AnomalyConfig) -> None:
        self.block = block
        self.quantiser = _RangeQuantiser(config.levels, config.range_shrink, config.magnitude_bits)
        order = config.context_order if block == 1 else config.block_context_order
        self.model = _ContextModel(self.quantiser.alphabet, order, config)
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
        symbol, extra = self.quantiser.encode(mean)
        bits = self.model.surprisal(symbol) + extra
        self.quantiser.learn(mean)
        return bits

    def to_state(self) -> dict[str, object]:
        return {
            "low": _finite_or_none(self.quantiser.low),
            "high": _finite_or_none(self.quantiser.high),
            "total": self.total,
            "filled": self.filled,
            "model": self.model.to_state(),
        }

    def load_state(self, state: dict[str, object]) -> None:
        self.quantiser.low = _nan_if_none(state["low"])
        self.quantiser.high = _nan_if_none(state["high"])
        self.total = _as_float(state["total"])
        self.filled = _as_int(state["filled"])
        model = state["model"]
        if not isinstance(model, dict):
            raise ValueError("bad detector state: model")
        self.model.load_state(model)


class AnomalyDetector:
    """Streaming detector for one metric of one service."""

    __slots__ = (
        "_last_alert",
        "_last_timestamp",
        "_resolutions",
        "_seen",
        "config",
    )

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or _DEFAULT_CONFIG
        self._resolutions = [_Resolution(b, self.config) for b in self.config.block_sizes]
        self._seen = 0
        self._last_alert = -1  # sample index of the latest alert, -1: none yet
        self._last_timestamp = -math.inf

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

    def update(self, value: float, timestamp: float) -> float:
        """Score `value` (seen at unix time `timestamp`) in [0, 1], then learn it.

        Non-finite values are not learned from and score 0: a missing reading
        is the probe's problem, not the metric's. The model counts samples and
        only records the latest timestamp, so irregular, repeated or
        out-of-order timestamps are fine.
        """
        if not math.isfinite(value):
            return 0.0
        if math.isfinite(timestamp):
            self._last_timestamp = max(self._last_timestamp, timestamp)
        bits = max(r.update(value) for r in self._resolutions)
        self._seen += 1
        if self._seen <= self.config.warmup_samples:
            return 0.0
        return self._score(self._deduplicate(bits))

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
        return {
            "version": _STATE_VERSION,
            "config": {**asdict(self.config), "block_sizes": list(self.config.block_sizes)},
            "seen": self._seen,
            "last_alert": self._last_alert,
            "last_timestamp": _finite_or_none(self._last_timestamp),
            "resolutions": [r.to_state() for r in self._resolutions],
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> AnomalyDetector:
        """Rebuild a detector from `to_state` output."""
        if state.get("version") != _STATE_VERSION:
            raise ValueError("unsupported detector state version")
        raw = state["config"]
        if not isinstance(raw, dict):
            raise ValueError("bad detector state: config")
        blocks = tuple(_as_int(b) for b in _as_list(raw["block_sizes"]))
        detector = cls(AnomalyConfig(**{**raw, "block_sizes": blocks}))
        detector._seen = _as_int(state["seen"])
        detector._last_alert = _as_int(state["last_alert"])
        last = state["last_timestamp"]
        detector._last_timestamp = -math.inf if last is None else _as_float(last)
        for resolution, sub in zip(
            detector._resolutions, _as_list(state["resolutions"]), strict=True
        ):
            if not isinstance(sub, dict):
                raise ValueError("bad detector state: resolution")
            resolution.load_state(sub)
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


def _as_list(x: object) -> list[object]:
    if not isinstance(x, list):
        raise ValueError(f"bad detector state: expected a list, got {type(x).__name__}")
    return x
