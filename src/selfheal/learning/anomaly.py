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
(about 13 KB per detector with Python's object overhead) and are halved
regularly so that old behaviour fades. An update costs a few array look-ups
and logarithms: about 5 microseconds in CPython with its memory in cache, 7-12
in an agent scoring thousands of detectors in turn (docs/anomaly.md, Cost).

The knobs are in ``anomaly_config``, the symbol and context models in
``anomaly_model``, the views in ``anomaly_views``. NAB results and the things
that did not work are in ``docs/anomaly.md``.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from selfheal.learning.anomaly_config import AnomalyConfig
from selfheal.learning.anomaly_model import (
    _as_dict,
    _as_float,
    _as_int,
    _as_list,
    _finite_or_none,
    _nan_if_none,
)
from selfheal.learning.anomaly_views import (
    _BlockView,
    _ExtremeView,
    _Resolution,
    _RunView,
    _SeasonalView,
)

__all__ = ["AnomalyConfig", "AnomalyDetector", "score_csv", "score_series"]

_NEVER = 2**62  # the due sample number of a detector without block views
_RETIRED_KNOBS = ("weekly", "stuck")  # in the config of states saved before they were removed
_STATE_VERSION = 3  # 3 added the weekly and run views; 2 and 1 still load
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


class AnomalyDetector:
    """Streaming detector for one metric of one service."""

    __slots__ = (
        "_alert_range",
        "_alert_value",
        "_blocks",
        "_coarse",
        "_confirming",
        "_dues",
        "_extreme",
        "_last_alert",
        "_last_timestamp",
        "_next_due",
        "_peak_bits",
        "_peak_value",
        "_resolutions",
        "_ring",
        "_runs",
        "_seasonal",
        "_seen",
        "_weekly",
        "config",
    )

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or _DEFAULT_CONFIG
        self._resolutions = [_Resolution(b, self.config) for b in self.config.block_sizes]
        self._coarse = tuple(self._resolutions[1:])
        block = self.config.confirm_block
        self._extreme = _ExtremeView(block, self.config) if block else None
        self._seasonal = _SeasonalView(self.config) if self.config.seasonal_block else None
        # the weekly view is gated by the daily one, so it comes with it
        seasonal = self._seasonal is not None
        self._weekly = _SeasonalView(self.config, days=7) if seasonal else None
        self._runs = _RunView(self.config.alert_bits)
        # views of blocks, in the order they are consulted (raw, extreme, coarse, seasonal,
        # weekly; `_dues` in the same order); the raw values are coded as they come
        raw = self._resolutions[0]
        views: list[_BlockView | None] = [raw] if raw.block > 1 else []
        views += [self._extreme, *self._coarse, self._seasonal, self._weekly]
        self._blocks = tuple(v for v in views if v is not None)
        # the latest values, which the block views add up when their block is complete
        self._ring = array("d", [0.0]) * max([1] + [v.block for v in self._blocks])
        # when each of those views' block ends (a copy: reading it touches no view)
        self._dues = array("q", [v.due for v in self._blocks])
        self._next_due = min(self._dues, default=_NEVER)
        self._confirming = self._extreme is not None and self._extreme.ready
        self._seen = 0
        self._last_alert = -1  # sample index of the latest alert, -1: none yet
        self._last_timestamp = -math.inf
        # the most surprising raw value of the open confirmation block, and its bits
        self._peak_bits = 0.0
        self._peak_value = math.nan
        self._alert_value = math.nan
        self._alert_range: tuple[float, float] | None = None

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

    @property
    def alert_range(self) -> tuple[float, float] | None:
        """The range of raw values learned just before the value that raised the latest alert.

        What "normal" was before the alert (``normal_range`` at that moment),
        kept so that the owner need not copy the range before every value.
        None before any alert, and after ``from_state`` until the next one.
        """
        return self._alert_range

    def update(self, value: float, timestamp: float) -> float:
        """Score `value` (seen at unix time `timestamp`) in [0, 1], then learn it.

        Non-finite values are not learned from and score 0: a missing reading
        is the probe's problem, not the metric's. The model counts samples;
        timestamps only place blocks in the time of day for the seasonal view,
        so irregular, repeated or out-of-order timestamps are fine.
        """
        if not math.isfinite(value):
            return 0.0
        if timestamp > self._last_timestamp and math.isfinite(timestamp):
            self._last_timestamp = timestamp
        config = self.config
        n = self._seen + 1  # this value's sample number
        ring = self._ring
        ring[n % len(ring)] = value
        due = n >= self._next_due  # some block ends here: only then are those views touched
        raw = self._resolutions[0]
        low, high = raw.quantiser.low, raw.quantiser.high  # the range before this value
        dues = self._dues
        if raw.block == 1:
            bits = raw.code(0.0 + value)  # the mean of a block of one, as for longer blocks
        elif due and dues[0] == n:
            bits = raw.complete(ring, n)
            dues[0] = raw.due
        else:
            bits = 0.0
        cause = value
        extreme = self._extreme
        if extreme is not None:  # confirmation, inline: this runs for every value
            if bits >= self._peak_bits:  # the most surprising raw value of the block
                self._peak_bits, self._peak_value = bits, value
            extreme_bits = None
            slot = 0 if raw.block == 1 else 1
            if due and dues[slot] == n:
                extreme_bits = extreme.complete(ring, n)
                dues[slot] = extreme.due
                self._confirming = extreme.ready
            if not self._confirming:  # a view added to an older detector: raw bits as they were
                self._peak_bits, self._peak_value = 0.0, math.nan
            elif extreme_bits is None:  # mid-block: only a raw surprise twice the level counts
                bits -= config.alert_bits
            else:  # end of a block: blend its peak with the extreme view's bits
                weight = config.confirm_weight
                blended = (1.0 - weight) * self._peak_bits + weight * extreme_bits
                unconfirmed = bits - config.alert_bits
                if unconfirmed > blended:
                    bits = unconfirmed
                else:
                    bits, cause = blended, self._peak_value
                self._peak_bits, self._peak_value = 0.0, math.nan
        if due:
            bits, cause = self._blocks_end(n, value, timestamp, bits, cause)
        runs = self._runs
        if runs is not None:
            run_bits = runs.update(value)
            if run_bits > bits:
                bits, cause = run_bits, value
        self._seen = seen = n
        if seen <= config.warmup_samples:
            return 0.0
        # one alert per incident: after an alert, stay quiet for `rest_samples`
        last_alert = self._last_alert
        if last_alert >= 0 and seen - last_alert <= config.rest_samples:
            return 0.0
        if not bits >= config.alert_bits:
            return bits / (bits + config.alert_bits) if bits > 0 else 0.0
        self._last_alert = seen
        self._alert_value = cause
        self._alert_range = None if low != low else (low, high)
        return bits / (bits + config.alert_bits)

    def _blocks_end(
        self, n: int, value: float, timestamp: float, bits: float, cause: float
    ) -> tuple[float, float]:
        """The coarse and seasonal views whose block ends with sample n: the larger bits win."""
        ring, dues = self._ring, self._dues
        slot = len(self._blocks) - len(self._coarse)  # the coarse views come after raw and extreme
        if self._seasonal is not None:
            slot -= 2 if self._weekly is not None else 1
        for resolution in self._coarse:
            if dues[slot] == n:
                coarse_bits = resolution.complete(ring, n)
                dues[slot] = resolution.due
                if coarse_bits > bits:
                    bits, cause = coarse_bits, value
            slot += 1
        seasonal = self._seasonal
        if seasonal is not None:
            if dues[slot] == n:
                residual_bits = seasonal.complete(ring, n, timestamp)
                dues[slot] = seasonal.due
                if residual_bits is not None and residual_bits > bits and seasonal.ready:
                    bits, cause = residual_bits, value
            weekly = self._weekly
            if weekly is not None and dues[slot + 1] == n:
                week_bits = weekly.complete(ring, n, timestamp, seasonal.residual_square)
                dues[slot + 1] = weekly.due
                if week_bits is not None and week_bits > bits and weekly.ready:
                    bits, cause = week_bits, value
        self._next_due = min(dues)
        return bits, cause

    def to_state(self) -> dict[str, object]:
        """JSON-serialisable snapshot; `from_state` continues exactly from here."""
        extreme, seasonal, weekly = self._extreme, self._seasonal, self._weekly
        ring, seen = self._ring, self._seen
        return {
            "version": _STATE_VERSION,
            "config": {**asdict(self.config), "block_sizes": list(self.config.block_sizes)},
            "seen": self._seen,
            "last_alert": self._last_alert,
            "last_timestamp": _finite_or_none(self._last_timestamp),
            "peak_bits": self._peak_bits,
            "peak_value": _finite_or_none(self._peak_value),
            "alert_value": _finite_or_none(self._alert_value),
            "resolutions": [r.to_state(ring, seen) for r in self._resolutions],
            "extreme": None if extreme is None else extreme.to_state(ring, seen),
            "seasonal": None if seasonal is None else seasonal.to_state(ring, seen),
            "weekly": None if weekly is None else weekly.to_state(ring, seen),
            "runs": self._runs.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> AnomalyDetector:
        """Rebuild a detector from `to_state` output.

        States of the first version (no confirmation or seasonal view) and
        of the second (no weekly view) load too: what they had carries on, the
        new views start empty and stay silent until they have warmed up. A first-version
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
        if version not in (1, 2, _STATE_VERSION):
            raise ValueError("unsupported detector state version")
        raw = state["config"]
        if not isinstance(raw, dict):
            raise ValueError("bad detector state: config")
        if version == 1 and raw == _V1_DEFAULTS:
            config = _DEFAULT_CONFIG
        else:
            blocks = tuple(_as_int(b) for b in _as_list(raw["block_sizes"]))
            # "weekly" and "stuck" were switches of the weekly and run views, which
            # are now always on: a state saved with either off gets that view empty
            knobs = {k: v for k, v in raw.items() if k not in _RETIRED_KNOBS}
            config = AnomalyConfig(**{**knobs, "block_sizes": blocks})
        detector = cls(config)
        detector._seen = seen = _as_int(state["seen"])
        for block_view in detector._blocks:  # views the state lacks begin a block here
            block_view.start_at(seen)
        detector._last_alert = _as_int(state["last_alert"])
        last = state["last_timestamp"]
        detector._last_timestamp = -math.inf if last is None else _as_float(last)
        for resolution, sub in zip(
            detector._resolutions, _as_list(state["resolutions"]), strict=True
        ):
            resolution.load_state(_as_dict(sub), seen)
        if version != 1:
            detector._load_views(state, version)
        detector._dues = array("q", [v.due for v in detector._blocks])
        detector._next_due = min(detector._dues, default=_NEVER)
        extreme = detector._extreme
        detector._confirming = extreme is not None and extreme.ready
        return detector

    def _load_views(self, state: dict[str, object], version: object) -> None:
        """The views beyond the resolutions (version 2 on)."""
        self._peak_bits = _as_float(state["peak_bits"])
        self._peak_value = _nan_if_none(state["peak_value"])
        self._alert_value = _nan_if_none(state["alert_value"])
        views: list[tuple[_ExtremeView | _SeasonalView | _RunView | None, object]] = [
            (self._extreme, state["extreme"]),
            (self._seasonal, state["seasonal"]),
        ]
        if version == _STATE_VERSION:  # a version-2 state's weekly and run views start empty
            if state["weekly"] is not None or self._weekly is None:
                views.append((self._weekly, state["weekly"]))
            if state["runs"] is not None:
                views.append((self._runs, state["runs"]))
        for view, sub in views:
            if (view is None) != (sub is None):
                raise ValueError("bad detector state: views do not match the configuration")
            if isinstance(view, _RunView):
                view.load_state(_as_dict(sub))
            elif view is not None:
                view.load_state(_as_dict(sub), self._seen)


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
