"""Unit tests for the streaming anomaly detector (synthetic data only)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest

from selfheal.learning.anomaly import AnomalyConfig, AnomalyDetector, score_csv, score_series
from selfheal.learning.anomaly_views import _RunView

START = 1_700_000_000.0
STEP = 300.0  # five-minute samples, as most monitored metrics
WARM = 500  # a few daily cycles of history before asserting quietness


def stamps(n: int) -> list[float]:
    return [START + STEP * i for i in range(n)]


def sinusoid(n: int, seed: int = 7, noise: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [50 + 20 * math.sin(2 * math.pi * i / 288) + rng.gauss(0, noise) for i in range(n)]


def spiky(n: int, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [rng.expovariate(1.0) * (30 if rng.random() < 0.01 else 1) for _ in range(n)]


@pytest.mark.parametrize(
    "values",
    [sinusoid(3000), spiky(3000), [float(i % 7) for i in range(3000)], [1e300, -1e300] * 500],
)
def test_scores_are_probabilities(values):
    scores = score_series(stamps(len(values)), values)
    assert len(scores) == len(values)
    assert all(0.0 <= s <= 1.0 for s in scores)


def test_scores_are_causal():
    values = spiky(2500)
    values[1800] = 500.0  # a future anomaly must not leak into earlier scores
    full = score_series(stamps(len(values)), values)
    for cut in (200, 1000, 1799):
        assert score_series(stamps(cut), values[:cut]) == full[:cut]


def test_flat_series_stays_quiet():
    scores = score_series(stamps(2000), [42.0] * 2000)
    assert max(scores) < 0.25  # the coarse resolutions are still young here
    assert max(scores[1000:]) < 0.1


def test_noisy_sinusoid_stays_quiet_after_warm_up():
    scores = score_series(stamps(3000), sinusoid(3000))[WARM:]
    assert max(scores) < 0.5
    assert sum(scores) / len(scores) < 0.15


def test_level_shift_alerts_at_the_change():
    values = sinusoid(3000)
    values[2000:] = [v + 60 for v in values[2000:]]
    scores = score_series(stamps(len(values)), values)
    assert max(scores[WARM:2000]) < 0.5
    assert scores[2000] >= 0.5


@pytest.mark.parametrize("delta", [100.0, -100.0])
def test_spike_alerts_on_the_spike(delta):
    values = sinusoid(3000)
    values[2000] += delta
    scores = score_series(stamps(len(values)), values)
    assert scores[2000] >= 0.5
    assert scores[2000] == max(scores)


def test_alerts_are_deduplicated():
    values = sinusoid(3000)
    values[2000] += 100.0
    values[2010] += 100.0  # same size again, shortly after: same incident
    scores = score_series(stamps(len(values)), values)
    assert scores[2000] >= 0.5
    assert scores[2010] == 0.0


def test_state_round_trip_continues_identically():
    values = spiky(3000)
    times = stamps(len(values))
    reference = AnomalyDetector()
    expected = [reference.update(v, t) for v, t in zip(values, times, strict=True)]

    first = AnomalyDetector()
    got = [first.update(v, t) for v, t in zip(values[:1234], times[:1234], strict=True)]
    state = json.loads(json.dumps(first.to_state()))
    second = AnomalyDetector.from_state(state)
    got += [second.update(v, t) for v, t in zip(values[1234:], times[1234:], strict=True)]
    assert got == expected


@pytest.mark.parametrize("config", [AnomalyConfig(), AnomalyConfig(block_sizes=(2, 24, 96))])
def test_reloading_mid_block_again_and_again_changes_nothing(config):
    # block views add their values up when a block ends (from the detector's ring
    # of recent values); a state saved mid-block carries the partial sum instead
    values = daily_square_wave(4, missing_day=3, seed=5)
    times = [DAY_START + STEP * i for i in range(len(values))]
    steady, reloaded = AnomalyDetector(config), AnomalyDetector(config)
    for i, (v, t) in enumerate(zip(values, times, strict=True)):
        assert reloaded.update(v, t) == steady.update(v, t), f"sample {i}"
        if i % 7 == 0:
            reloaded = AnomalyDetector.from_state(json.loads(json.dumps(reloaded.to_state())))
            assert reloaded.to_state() == steady.to_state(), f"state after sample {i}"


def test_an_alert_keeps_the_range_learned_before_it():
    detector = AnomalyDetector()
    values = sinusoid(1000)
    values[800] += 100.0
    alerts = []
    for i, (v, t) in enumerate(zip(values, stamps(1000), strict=True)):
        before = detector.normal_range()
        if detector.update(v, t) >= 0.5:
            assert detector.alert_range == before
            alerts.append(i)
    assert 800 in alerts


def test_state_round_trip_keeps_config():
    config = AnomalyConfig(levels=8, block_sizes=(1, 12), rest_samples=10)
    detector = AnomalyDetector(config)
    detector.update(1.0, START)
    assert AnomalyDetector.from_state(detector.to_state()).config == config


def test_from_state_rejects_foreign_state():
    with pytest.raises(ValueError, match="version"):
        AnomalyDetector.from_state({"version": 999})


def test_non_finite_values_do_not_crash_or_count():
    values = sinusoid(1000)
    with_gaps = list(values)
    for i in (300, 301, 700):
        with_gaps[i] = math.nan
    with_gaps[500] = math.inf
    times = stamps(len(values))
    scores = score_series(times, with_gaps)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[300] == scores[301] == scores[500] == scores[700] == 0.0
    assert not any(math.isnan(s) for s in scores)


def test_irregular_and_out_of_order_timestamps_do_not_crash():
    values = spiky(1000)
    times = stamps(len(values))
    times[100], times[101] = times[101], times[100]
    times[200:210] = [times[200]] * 10  # repeated
    times[300] = math.nan
    times[400] = START - 1e6  # far in the past
    scores = score_series(times, values)
    assert all(0.0 <= s <= 1.0 for s in scores)
    detector = AnomalyDetector()
    assert detector.last_timestamp is None
    for v, t in zip(values, times, strict=True):
        detector.update(v, t)
    assert detector.last_timestamp == max(t for t in times if not math.isnan(t))


def test_score_series_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="length"):
        score_series([START], [1.0, 2.0])


def test_config_validation():
    with pytest.raises(ValueError, match="levels"):
        AnomalyConfig(levels=1)
    with pytest.raises(ValueError, match="block_sizes"):
        AnomalyConfig(block_sizes=())


def test_score_csv_adds_a_score_column(tmp_path: Path):
    src = tmp_path / "in.csv"
    dst = tmp_path / "out.csv"
    values = sinusoid(400)
    with src.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "value"])
        for i, v in enumerate(values):
            writer.writerow([f"2014-04-01 {i // 12 % 24:02d}:{i % 12 * 5:02d}:00", v])
        writer.writerow(["2014-04-02 09:00:00", "not-a-number"])
    assert score_csv(src, dst) == len(values) + 1
    with dst.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp", "value", "anomaly_score"]
    assert len(rows) == len(values) + 2
    assert rows[1][:2] == ["2014-04-01 00:00:00", str(values[0])]
    assert all(0.0 <= float(r[2]) <= 1.0 for r in rows[1:])
    assert float(rows[-1][2]) == 0.0


# -- confirmation, the seasonal view, alert values and older states --------------------

DAY_START = START - START % 86400  # midnight UTC, so that days line up with slots
STATE_V1 = Path(__file__).parent / "data" / "anomaly_state_v1.json"


def daily_square_wave(days: int, missing_day: int, seed: int) -> list[float]:
    """80 from 08:00 to 16:00 and 20 otherwise, with noise; no rise on `missing_day`."""
    rng = random.Random(seed)
    values = []
    for i in range(days * 288):
        day, slot = divmod(i, 288)
        high = 96 <= slot < 192 and day != missing_day
        values.append((80.0 if high else 20.0) + rng.gauss(0, 2))
    return values


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_a_missing_daily_rise_alerts_through_the_seasonal_view(seed):
    values = daily_square_wave(12, missing_day=9, seed=seed)
    times = [DAY_START + STEP * i for i in range(len(values))]
    scores = score_series(times, values)
    per_day = [max(scores[d * 288 : (d + 1) * 288]) for d in range(12)]
    assert per_day[9] >= 0.5
    assert max(per_day[:9] + per_day[10:]) < 0.5  # nor the day after: the profile is kept
    without = score_series(times, values, AnomalyConfig(seasonal_block=0))
    assert max(without[9 * 288 : 10 * 288]) < 0.5  # persistence explains a missing rise


def test_confirmation_cuts_false_alerts_on_spiky_noise():
    alerts = {}
    for block in (0, 3):
        config = AnomalyConfig(confirm_block=block)
        alerts[block] = sum(
            sum(s >= 0.5 for s in score_series(stamps(6000), spiky(6000, seed), config)[WARM:])
            for seed in (4, 5, 6)
        )
    assert alerts[3] < alerts[0]


@pytest.mark.parametrize(("at", "delta"), [(1998, 40.0), (1999, -40.0), (2000, 40.0)])
def test_a_confirmed_alert_reports_the_value_it_is_about(at, delta):
    values = sinusoid(3000)
    values[at] += delta
    detector = AnomalyDetector()
    assert detector.alert_value is None
    scores = [detector.update(v, t) for v, t in zip(values, stamps(3000), strict=True)]
    alerts = [i for i, s in enumerate(scores) if s >= 0.5 and i >= WARM]
    assert len(alerts) == 1
    assert at <= alerts[0] <= at + 2  # at the end of the 3-sample block at the latest
    assert detector.alert_value == values[at]


def test_state_round_trip_with_a_daily_cycle_continues_identically():
    values = daily_square_wave(8, missing_day=6, seed=3)
    times = [DAY_START + STEP * i for i in range(len(values))]
    expected = score_series(times, values)
    first = AnomalyDetector()
    cut = 5 * 288 + 100
    got = [first.update(v, t) for v, t in zip(values[:cut], times[:cut], strict=True)]
    second = AnomalyDetector.from_state(json.loads(json.dumps(first.to_state())))
    got += [second.update(v, t) for v, t in zip(values[cut:], times[cut:], strict=True)]
    assert got == expected


def test_loads_a_version_1_state_and_carries_on():
    state = json.loads(STATE_V1.read_text())
    assert state["version"] == 1
    detector = AnomalyDetector.from_state(state)
    assert detector.config == AnomalyConfig()  # the old default becomes today's
    assert detector.samples == state["seen"]
    raw = state["resolutions"][0]
    assert detector.normal_range() == (raw["low"], raw["high"])
    # it was fed 700 samples of `sinusoid` at 5-minute steps; carry on with a spike
    values = sinusoid(1300)[700:]
    values[400] += 100.0
    times = stamps(1300)[700:]
    scores = [detector.update(v, t) for v, t in zip(values, times, strict=True)]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores[400] == max(scores) >= 0.5
    assert detector.to_state()["version"] == 3


def test_loads_a_version_2_state_whose_weekly_view_starts_empty():
    values = daily_square_wave(8, missing_day=6, seed=3)
    times = [DAY_START + STEP * i for i in range(len(values))]
    first = AnomalyDetector()
    cut = 5 * 288 + 100
    for v, t in zip(values[:cut], times[:cut], strict=True):
        first.update(v, t)
    state = json.loads(json.dumps(first.to_state()))
    del state["weekly"], state["runs"]
    state["version"] = 2
    second = AnomalyDetector.from_state(state)
    assert second.config == AnomalyConfig()
    fresh = AnomalyDetector().to_state()["weekly"]
    assert second.to_state()["weekly"] == fresh  # nothing learned yet
    rest = [second.update(v, t) for v, t in zip(values[cut:], times[cut:], strict=True)]
    assert max(rest) >= 0.5  # the missing day is still found by the daily view


def test_a_version_1_state_keeps_a_custom_configuration():
    state = json.loads(STATE_V1.read_text())
    state["config"]["rest_samples"] = 50
    detector = AnomalyDetector.from_state(state)
    assert detector.config.rest_samples == 50
    assert detector.config.alert_bits == 10.0
    assert detector.config.confirm_block == AnomalyConfig().confirm_block


def test_from_state_rejects_views_that_do_not_match_the_configuration():
    detector = AnomalyDetector()
    for v, t in zip(sinusoid(300), stamps(300), strict=True):
        detector.update(v, t)
    state = detector.to_state()
    state["seasonal"] = None
    with pytest.raises(ValueError, match="views"):
        AnomalyDetector.from_state(state)
    state = detector.to_state()
    state["extreme"] = "nonsense"
    with pytest.raises(ValueError, match="bad detector state"):
        AnomalyDetector.from_state(state)


def test_a_state_saved_with_the_retired_switches_off_loads_with_those_views_empty():
    # before "weekly" and "stuck" were removed, a configuration could switch the
    # weekly and run views off; such a state loads, and those views start empty
    detector = AnomalyDetector()
    for v, t in zip(sinusoid(400), stamps(400), strict=True):
        detector.update(v, t)
    state = json.loads(json.dumps(detector.to_state()))
    state["config"].update(weekly=False, stuck=False)
    state["weekly"] = state["runs"] = None
    loaded = AnomalyDetector.from_state(state)
    fresh = AnomalyDetector().to_state()
    assert loaded.to_state()["weekly"] == fresh["weekly"]
    assert loaded.to_state()["runs"] == fresh["runs"]
    assert loaded.config == AnomalyConfig()


def test_new_views_can_be_turned_off_and_are_validated():
    detector = AnomalyDetector(AnomalyConfig(confirm_block=0, seasonal_block=0))
    for v, t in zip(spiky(500), stamps(500), strict=True):
        detector.update(v, t)
    state = detector.to_state()
    assert state["extreme"] is None
    assert state["seasonal"] is None
    assert AnomalyDetector.from_state(state).config == detector.config
    with pytest.raises(ValueError, match="confirm_weight"):
        AnomalyConfig(confirm_weight=1.5)
    with pytest.raises(ValueError, match="seasonal_slots"):
        AnomalyConfig(seasonal_slots=0)


def _corrupt(state: dict, path: tuple, value: object) -> dict:
    state = json.loads(json.dumps(state))
    node = state
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return state


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("resolutions", 0, "model", "counts", 0), [1, 2, 3]),
        (("resolutions", 0, "model", "counts", 0, 0), -1),
        (("resolutions", 0, "model", "log_weights"), []),
        (("resolutions", 0, "model", "history"), [99]),
        (("resolutions",), [{}]),
        (("config", "levels"), "ten"),
        (("config", "colour"), "blue"),
        (("seasonal", "profile"), [1.0]),
        (("extreme", "model"), None),
        (("seen",), 1.5),
    ],
)
def test_a_corrupt_state_is_rejected_with_value_error(path, value):
    detector = AnomalyDetector()
    for v, t in zip(sinusoid(400), stamps(400), strict=True):
        detector.update(v, t)
    with pytest.raises(ValueError, match="bad detector state"):
        AnomalyDetector.from_state(_corrupt(detector.to_state(), path, value))


@pytest.mark.parametrize("state", [[], "state", None, {"version": 2}])
def test_a_state_that_is_not_one_is_rejected_with_value_error(state):
    with pytest.raises(ValueError, match="detector state"):
        AnomalyDetector.from_state(state)


def test_a_stuck_continuous_value_alerts_once_but_a_quantised_one_does_not():
    rng = random.Random(5)
    continuous = [50 + rng.gauss(0, 1) for _ in range(3000)] + [50.0] * 300
    scores = score_series(stamps(3300), continuous)
    alerts = [i for i, s in enumerate(scores) if s >= 0.5 and i >= 3000]
    assert alerts
    assert alerts[0] - 3000 <= 12  # an hour unchanged
    assert len(alerts) <= 3  # once per run (and the rest period), not every sample
    # counts that are often equal in a row: the run view says nothing (the
    # block means may still find two hours of zeros odd)
    counts = [float(rng.choice((0, 0, 0, 1, 2))) for _ in range(3000)] + [0.0] * 300
    runs = _RunView(AnomalyConfig().alert_bits)
    assert all(runs.update(v) == 0.0 for v in counts)
    # one exact repeat makes a metric quantised: a later long run is not news
    once = [*continuous[:1000], continuous[999], *continuous[1000:]]
    runs = _RunView(AnomalyConfig().alert_bits)
    assert all(runs.update(v) == 0.0 for v in once)
