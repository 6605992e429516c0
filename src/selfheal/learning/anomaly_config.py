"""Configuration of the streaming anomaly detector: every knob, with its reason."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnomalyConfig"]


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
