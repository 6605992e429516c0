"""Heartbeats: the samples they make, and the dead man's switch they arm."""

from __future__ import annotations

import asyncio

from pydantic import SecretStr

from selfheal.checks.heartbeat import Heartbeat, HeartbeatWatch, silence_sample
from selfheal.config import Settings
from selfheal.detectors.monitor import Confirmed, Monitor, Signal
from selfheal.services import build_spec
from selfheal.types import IncidentType, ServiceKey, ServiceStatus

KEY = ServiceKey("t", "svc")


def spec(**overrides):
    settings = Settings(_env_file=None, SECRET_KEY=SecretStr("x" * 20), MAX_RETRIES=3)
    return build_spec(settings, key=KEY, name="svc", health_url="http://127.0.0.1:1/h", **overrides)


def test_heartbeat_sample_carries_figures_and_pushed_errors() -> None:
    beat = Heartbeat(status="ok", cpu=12.0, memory=40.0, error_rate=0.05, requests=20)
    sample = beat.sample(KEY, at=1.0, errors=8)
    assert sample.ok
    assert (sample.cpu, sample.memory) == (12.0, 40.0)
    assert sample.error_rate == 0.4  # 8 errors / 20 requests beats the reported 0.05
    assert sample.details == {"pushed_errors": 8, "requests": 20}
    # errors without a request count cannot make a rate; they are kept as a detail
    unknown = Heartbeat(error_rate=None).sample(KEY, at=1.0, errors=3)
    assert unknown.error_rate is None
    assert unknown.details == {"pushed_errors": 3}
    assert Heartbeat(requests=2).sample(KEY, at=1.0, errors=5).error_rate == 1.0


def test_a_missed_deadline_confirms_an_outage_at_once() -> None:
    signals: list[Signal] = []
    monitor = Monitor(on_signal=signals.append)
    the_spec = spec()
    monitor.observe(the_spec, Heartbeat().sample(KEY, at=1.0))
    monitor.observe(the_spec, silence_sample(KEY, at=2.0, silence=2.0), confirmed=True)
    confirmed = [s for s in signals if isinstance(s, Confirmed)]
    assert len(confirmed) == 1  # retries is 3, yet one silence sample is enough
    assert confirmed[0].symptom.type is IncidentType.UNREACHABLE
    assert confirmed[0].evidence == "by a missed heartbeat deadline"
    assert monitor.state(KEY).status is ServiceStatus.DOWN  # type: ignore[union-attr]


def test_pushed_errors_are_counted_until_the_next_heartbeat() -> None:
    monitor = Monitor(on_signal=lambda _s: None)
    monitor.track(KEY)
    monitor.count_errors(KEY, 2)
    monitor.count_errors(KEY, 3)
    monitor.count_errors(ServiceKey("t", "unknown"), 9)  # not tracked: ignored
    assert monitor.take_errors(KEY) == 5
    assert monitor.take_errors(KEY) == 0


async def test_watch_reports_silence_once_after_the_timeout() -> None:
    silences: list[tuple[ServiceKey, float]] = []
    watch = HeartbeatWatch(on_silence=lambda key, silent: silences.append((key, silent)))
    watch.beat(KEY, 0.2)
    for _ in range(3):  # beats keep it quiet; the timer re-arms lazily
        await asyncio.sleep(0.1)
        watch.beat(KEY, 0.2)
    assert silences == []
    assert len(watch) == 1
    await asyncio.sleep(0.35)
    assert len(silences) == 1
    assert silences[0][0] == KEY
    assert 0.2 <= silences[0][1] < 0.4
    await asyncio.sleep(0.3)
    assert len(silences) == 1  # reported once, not again until a heartbeat re-arms it
    assert len(watch) == 0
    assert watch.last(KEY) is not None
    watch.beat(KEY, 0.1)
    await asyncio.sleep(0.2)
    assert len(silences) == 2


async def test_watch_shorter_timeout_and_forget() -> None:
    silences: list[ServiceKey] = []
    watch = HeartbeatWatch(on_silence=lambda key, _s: silences.append(key))
    watch.beat(KEY, 5.0)
    watch.beat(KEY, 0.05)  # the timeout got shorter: the timer moves earlier
    await asyncio.sleep(0.15)
    assert silences == [KEY]
    other = ServiceKey("t", "other")
    watch.beat(other, 0.05)
    watch.forget(other)
    await asyncio.sleep(0.1)
    assert silences == [KEY]
    assert watch.last(other) is None
    watch.beat(KEY, 1.0)
    watch.stop()
    assert len(watch) == 0
