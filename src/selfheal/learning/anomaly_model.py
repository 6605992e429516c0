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
_COUNT_ROOM = _COUNT_MAX - _COUNT_UNIT  # a row whose total is above this stops counting
_exp, _log, _log2 = math.exp, math.log, math.log2  # module globals: the hot path's look-ups


def _elias_gamma_bits(k: int) -> int:
    """Length of the Elias-gamma code of a positive integer."""
    return 2 * (k.bit_length() - 1) + 1


class _RangeQuantiser:
    """The slowly shrinking range of past values, cut into `levels` bins.

    A value inside the range is the symbol of its bin; outside, an escape
    symbol (`levels` below, `levels + 1` above) plus the bits of how far. Then
    the range widens to the value and shrinks a little towards recent values.
    ``_View.code`` does this inline: it runs for every symbol.
    """

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

    def distance_bits(self, distance: float, width: float) -> float:
        """Bits of how many bin widths a value lies outside the range."""
        if width <= 0:
            return 0.0
        steps = min(distance / width, 1e300)
        return self.magnitude_bits * _elias_gamma_bits(max(1, math.ceil(steps)))


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
        "prior_total",
        "seen",
        "totals",
    )

    def __init__(self, alphabet: int, order: int, config: AnomalyConfig) -> None:
        self.alphabet = alphabet
        self.order = order
        self.prior = config.prior * _COUNT_UNIT
        self.prior_total = self.prior * alphabet
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
        uniformly and learn nothing. The default orders (2 for raw values, 1
        for the other views) with a full history take an unrolled path: it is
        most of the detector's time, and it does the same arithmetic in the
        same order as the loop, so the bits are identical.
        """
        history = self.history
        order = self.order
        if order == 2 and len(history) == 2:
            bits = self._full_order2(symbol, history)
        elif order == 1 and history:
            bits = self._full_order1(symbol, history)
        else:
            bits = self._any_order(symbol)
        self.seen += 1
        if self.seen % self.halve_every == 0:
            self._halve()
        return bits

    def _full_order2(self, symbol: int, history: list[int]) -> float:
        a = self.alphabet
        prior, prior_total = self.prior, self.prior_total
        counts0, counts1, counts2 = self.counts
        totals0, totals1, totals2 = self.totals
        log_weights = self.log_weights
        lw0, lw1, lw2 = log_weights
        top = lw0  # max(log_weights), as the builtin does it
        if lw1 > top:
            top = lw1
        if lw2 > top:
            top = lw2
        total = totals0[0]
        q0 = (counts0[symbol] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            counts0[symbol] += _COUNT_UNIT
            totals0[0] = total + _COUNT_UNIT
        ctx = newest = history[1]
        slot = ctx * a + symbol
        total = totals1[ctx]
        q1 = (counts1[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            counts1[slot] += _COUNT_UNIT
            totals1[ctx] = total + _COUNT_UNIT
        ctx = ctx * a + history[0]
        slot = ctx * a + symbol
        total = totals2[ctx]
        q2 = (counts2[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            counts2[slot] += _COUNT_UNIT
            totals2[ctx] = total + _COUNT_UNIT
        w0, w1, w2 = _exp(lw0 - top), _exp(lw1 - top), _exp(lw2 - top)
        discount = self.discount
        log_weights[0] = discount * lw0 + _log(q0)
        log_weights[1] = discount * lw1 + _log(q1)
        log_weights[2] = discount * lw2 + _log(q2)
        history[0], history[1] = newest, symbol
        return -_log2((w0 * q0 + w1 * q1 + w2 * q2) / (w0 + w1 + w2))

    def _full_order1(self, symbol: int, history: list[int]) -> float:
        a = self.alphabet
        prior, prior_total = self.prior, self.prior_total
        counts0, counts1 = self.counts
        totals0, totals1 = self.totals
        log_weights = self.log_weights
        lw0, lw1 = log_weights
        top = lw1 if lw1 > lw0 else lw0  # max(log_weights)
        total = totals0[0]
        q0 = (counts0[symbol] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            counts0[symbol] += _COUNT_UNIT
            totals0[0] = total + _COUNT_UNIT
        ctx = history[0]
        slot = ctx * a + symbol
        total = totals1[ctx]
        q1 = (counts1[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            counts1[slot] += _COUNT_UNIT
            totals1[ctx] = total + _COUNT_UNIT
        w0, w1 = _exp(lw0 - top), _exp(lw1 - top)
        discount = self.discount
        log_weights[0] = discount * lw0 + _log(q0)
        log_weights[1] = discount * lw1 + _log(q1)
        history[0] = symbol
        return -_log2((w0 * q0 + w1 * q1) / (w0 + w1))

    def _any_order(self, symbol: int) -> float:
        """The general loop: any order, a history not yet full."""
        a = self.alphabet
        prior = self.prior
        prior_total = self.prior_total
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
                if total <= _COUNT_ROOM:
                    counts[slot] += _COUNT_UNIT
                    totals[ctx] = total + _COUNT_UNIT
            mixed += weight * q
            log_weights[k] = discount * log_weights[k] + math.log(q)
        if self.order:
            history.append(symbol)
            if known >= self.order:
                del history[0]
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
        quantiser = self.quantiser
        low, high = quantiser.low, quantiser.high
        if low != low:  # nan: the first value
            quantiser.low = quantiser.high = x
            return self.model.surprisal(0) + 0.0
        span = high - low
        shrink = quantiser.shrink * span
        shrunk = high - shrink
        quantiser.high = shrunk if shrunk > x else x
        shrunk = low + shrink
        quantiser.low = shrunk if shrunk < x else x
        levels = quantiser.levels
        width = span / levels
        if x > high:
            return self.model.surprisal(levels + 1) + quantiser.distance_bits(x - high, width)
        if x < low:
            return self.model.surprisal(levels) + quantiser.distance_bits(low - x, width)
        symbol = 0
        if width > 0:
            symbol = int((x - low) / width)
            if symbol >= levels:
                symbol = levels - 1
        return self.model.surprisal(symbol) + 0.0

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
