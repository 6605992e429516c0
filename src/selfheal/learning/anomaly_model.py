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
_SHARED: dict[float, float] = {}  # canonical float objects of the models' settings


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
    """Bayesian mixture of Markov models of order 0..k over a small alphabet.

    All counts live in one 16-bit array, `table`: for each order k, one row
    per context (the last k symbols in base `alphabet`, newest most
    significant), each row ``[total, count of symbol 0, ..., of symbol a-1]``.
    A symbol's count sits next to its row's total, so pricing a symbol
    touches three short rows of one array: this is most of the detector's
    time, and in an agent with thousands of detectors their memory is cold.
    """

    __slots__ = (
        "alphabet",
        "bases",
        "discount",
        "halve_every",
        "history",
        "log_weights",
        "order",
        "prior",
        "prior_total",
        "seen",
        "table",
    )

    def __init__(self, alphabet: int, order: int, config: AnomalyConfig) -> None:
        self.alphabet = alphabet
        self.order = order
        # one float object for every model with these settings, not one each:
        # in an agent with thousands of detectors a shared object stays in cache
        self.prior = _SHARED.setdefault(config.prior * _COUNT_UNIT, config.prior * _COUNT_UNIT)
        self.prior_total = _SHARED.setdefault(self.prior * alphabet, self.prior * alphabet)
        self.discount = config.weight_discount
        self.halve_every = config.halve_every
        row = alphabet + 1
        bases = [0]
        for k in range(order):
            bases.append(bases[-1] + row * alphabet**k)
        self.bases = tuple(bases)  # where each order's rows start
        self.table = array("H", bytes(2 * (bases[-1] + row * alphabet**order)))
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
        row = a + 1
        table = self.table
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
        for k, base in enumerate(self.bases):
            weight = math.exp(log_weights[k] - top)
            norm += weight
            if k > known:
                q = 1.0 / a
            else:
                if k:
                    ctx = ctx * a + history[-k]
                start = base + ctx * row
                slot = start + 1 + symbol
                total = table[start]
                q = (table[slot] + prior) / (total + prior_total)
                if total <= _COUNT_ROOM:
                    table[slot] += _COUNT_UNIT
                    table[start] = total + _COUNT_UNIT
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
        table = self.table
        row = self.alphabet + 1
        for start in range(0, len(table), row):
            total = 0
            for slot in range(start + 1, start + row):
                count = table[slot] >> 1
                table[slot] = count
                total += count
            table[start] = total

    def counts(self, k: int) -> list[int]:
        """The counts of order k, symbol by symbol within context by context."""
        row = self.alphabet + 1
        start = self.bases[k]
        table = self.table
        return [
            table[r + 1 + s]
            for r in range(start, start + row * self.alphabet**k, row)
            for s in range(self.alphabet)
        ]

    def to_state(self) -> dict[str, object]:
        return {
            "counts": [self.counts(k) for k in range(self.order + 1)],
            "log_weights": list(self.log_weights),
            "history": list(self.history),
            "seen": self.seen,
        }

    def load_state(self, state: dict[str, object]) -> None:
        counts = _as_list(state["counts"])
        if len(counts) != self.order + 1:
            raise ValueError("bad detector state: context orders")
        a = self.alphabet
        table = array("H")
        for k, row in enumerate(counts):
            values = array("H", (_as_int(c) for c in _as_list(row)))
            if len(values) != a ** (k + 1):
                raise ValueError("bad detector state: count table size")
            for ctx in range(a**k):
                part = values[ctx * a : (ctx + 1) * a]
                table.append(sum(part))
                table.extend(part)
        self.table = table
        self.log_weights = [_as_float(w) for w in _as_list(state["log_weights"])]
        if len(self.log_weights) != self.order + 1:
            raise ValueError("bad detector state: mixture weights")
        self.history = [_as_int(s) for s in _as_list(state["history"])]
        if len(self.history) > self.order or not all(0 <= s < self.alphabet for s in self.history):
            raise ValueError("bad detector state: history")
        self.seen = _as_int(state["seen"])


class _Order2Model(_ContextModel):
    """The model of order 2 (raw values), unrolled: most of the detector's time."""

    __slots__ = ()

    def surprisal(self, symbol: int) -> float:
        """As the general loop, unrolled for a full history of 2 (identical bits)."""
        history = self.history
        if len(history) < 2:
            return super().surprisal(symbol)
        a = self.alphabet
        row = a + 1  # rows of order 1 start at `row`, of order 2 at `row + a * row`
        table = self.table
        prior, prior_total = self.prior, self.prior_total
        log_weights = self.log_weights
        lw0, lw1, lw2 = log_weights
        top = lw0  # max(log_weights), as the builtin does it
        if lw1 > top:
            top = lw1
        if lw2 > top:
            top = lw2
        total = table[0]
        slot = 1 + symbol
        q0 = (table[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            table[slot] += _COUNT_UNIT
            table[0] = total + _COUNT_UNIT
        ctx = newest = history[1]
        start = row + ctx * row
        slot = start + 1 + symbol
        total = table[start]
        q1 = (table[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            table[slot] += _COUNT_UNIT
            table[start] = total + _COUNT_UNIT
        ctx = ctx * a + history[0]
        start = row + a * row + ctx * row
        slot = start + 1 + symbol
        total = table[start]
        q2 = (table[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            table[slot] += _COUNT_UNIT
            table[start] = total + _COUNT_UNIT
        w0, w1, w2 = _exp(lw0 - top), _exp(lw1 - top), _exp(lw2 - top)
        discount = self.discount
        log_weights[0] = discount * lw0 + _log(q0)
        log_weights[1] = discount * lw1 + _log(q1)
        log_weights[2] = discount * lw2 + _log(q2)
        history[0], history[1] = newest, symbol
        self.seen = seen = self.seen + 1
        if seen % self.halve_every == 0:
            self._halve()
        return -_log2((w0 * q0 + w1 * q1 + w2 * q2) / (w0 + w1 + w2))


class _Order1Model(_ContextModel):
    """The model of order 1 (every other view), unrolled."""

    __slots__ = ()

    def surprisal(self, symbol: int) -> float:
        """As the general loop, unrolled for a full history of 1 (identical bits)."""
        history = self.history
        if not history:
            return super().surprisal(symbol)
        row = self.alphabet + 1  # rows of order 1 start at `row`
        table = self.table
        prior, prior_total = self.prior, self.prior_total
        log_weights = self.log_weights
        lw0, lw1 = log_weights
        top = lw1 if lw1 > lw0 else lw0  # max(log_weights)
        total = table[0]
        slot = 1 + symbol
        q0 = (table[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            table[slot] += _COUNT_UNIT
            table[0] = total + _COUNT_UNIT
        start = row + history[0] * row
        slot = start + 1 + symbol
        total = table[start]
        q1 = (table[slot] + prior) / (total + prior_total)
        if total <= _COUNT_ROOM:
            table[slot] += _COUNT_UNIT
            table[start] = total + _COUNT_UNIT
        w0, w1 = _exp(lw0 - top), _exp(lw1 - top)
        discount = self.discount
        log_weights[0] = discount * lw0 + _log(q0)
        log_weights[1] = discount * lw1 + _log(q1)
        history[0] = symbol
        self.seen = seen = self.seen + 1
        if seen % self.halve_every == 0:
            self._halve()
        return -_log2((w0 * q0 + w1 * q1) / (w0 + w1))


def _context_model(alphabet: int, order: int, config: AnomalyConfig) -> _ContextModel:
    """The model of that order: an unrolled one for the default orders."""
    kind = {1: _Order1Model, 2: _Order2Model}.get(order, _ContextModel)
    return kind(alphabet, order, config)


class _View:
    """One stream of symbols: a quantiser and a context model."""

    __slots__ = ("model", "quantiser")

    def __init__(self, order: int, config: AnomalyConfig) -> None:
        self.quantiser = _RangeQuantiser(config.levels, config.range_shrink, config.magnitude_bits)
        self.model = _context_model(self.quantiser.alphabet, order, config)

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
