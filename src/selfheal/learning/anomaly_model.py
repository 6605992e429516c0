"""Building blocks of the anomaly detector: symbols from a learned range, bits from context.

A *view* turns a stream of numbers into symbols (`_RangeQuantiser`) and prices
each symbol in bits under an adaptive Bayesian mixture of Markov models
(`_ContextModel`). The views of ``anomaly_views`` and the detector in
``anomaly`` are made of these. The ``_as_*`` helpers validate saved states.
"""

from __future__ import annotations

import math
from array import array

from selfheal.learning.anomaly_config import AnomalyConfig

_COUNT_MAX = 65535  # counts are stored as unsigned 16-bit integers ...
_COUNT_UNIT = 4  # ... in quarters, so that halving keeps fractions down to 1/4


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
