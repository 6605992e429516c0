"""The monitor and the verifier under real timing: late results, blips, crash loops,
our own action's probes, and verification that gives up as soon as it knows.

Times are given explicitly (a sample carries when its probe started), so these
tests need no clock and no sleeps, except the verifier's, which is bounded.
"""

from __future__ import annotations

import time

from pydantic import SecretStr

from selfheal.checks.sample import Failure, Sample
from selfheal.config import Settings
from selfheal.configfile import FlappingConfig
from selfheal.detectors.monitor import (
    Cleared,
    Confirmed,
    FlapStarted,
    Monitor,
    Signal,
    StatusChanged,
)
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import IncidentType, Outcome, ServiceKey, ServiceStatus
from selfheal.verification.verifier import Verifier

KEY = ServiceKey("t", "svc")


def spec(retries: int = 2, interval: float = 1.0) -> ServiceSpec:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        SECRET_KEY=SecretStr("x" * 20),
        MAX_RETRIES=retries,
        CHECK_INTERVAL=interval,
    )
    return build_spec(settings, key=KEY, name="svc", health_url="http://127.0.0.1:1/h")


def good(at: float, **figures: float) -> Sample:
    sample = Sample(KEY, at, True, 5.0, status_code=200)
    for name, value in figures.items():
        setattr(sample, name, value)
    return sample


def bad(at: float, failure: Failure = Failure.HTTP_ERROR) -> Sample:
    return Sample(KEY, at, False, 5.0, status_code=500, failure=failure, error=failure.value)


def monitor(signals: list[Signal], changes: int = 4) -> Monitor:
    return Monitor(
        on_signal=signals.append,
        flapping=FlappingConfig(changes=changes, window=600),
        crash_window=600,
    )


def of(signals: list[Signal], kind: type) -> list[Signal]:
    return [s for s in signals if isinstance(s, kind)]


def test_a_late_result_feeds_history_but_never_the_status() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals), spec()
    m.observe(s, good(10.0))
    # the verification probe started at 12 and saw it healthy ...
    m.observe(s, good(12.0))
    # ... and a probe that started at 11, while it hung, lands after it
    m.observe(s, bad(11.0, Failure.TIMEOUT))
    m.observe(s, bad(11.5, Failure.TIMEOUT))
    state = m.state(KEY)
    assert state is not None
    assert state.status is ServiceStatus.UP
    assert state.last is not None
    assert state.last.at == 12.0
    assert [p[0] for p in state.recent.points()][-2:] == [11.0, 11.5]  # history keeps them
    assert not of(signals, Confirmed)
    assert [x.status for x in of(signals, StatusChanged)] == [ServiceStatus.UP]  # type: ignore[attr-defined]


def test_one_off_blips_open_nothing_and_never_count_as_flapping() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals, changes=2), spec(retries=2)
    at = 0.0
    for blip in range(30):
        at += 1
        m.observe(s, good(at))
        at += 1
        kind = [Failure.HTTP_ERROR, Failure.TIMEOUT][blip % 2]
        m.observe(s, bad(at, kind) if blip % 3 else good(at, memory=97.0))
    m.observe(s, good(at + 1))
    assert not of(signals, Confirmed)
    assert not of(signals, FlapStarted)
    assert len(of(signals, StatusChanged)) > 30  # the status did move with each blip


def test_confirmed_transitions_still_count_as_flapping() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals, changes=4), spec(retries=2)
    at = 0.0
    for _ in range(2):  # down for two probes, up for one: confirmed each way
        for sample in (bad(at + 1), bad(at + 2), good(at + 3)):
            m.observe(s, sample)
        at += 3
    assert len(of(signals, Confirmed)) == 2
    assert len(of(signals, Cleared)) == 2
    assert len(of(signals, FlapStarted)) == 1


def test_our_own_action_owns_the_probes_of_its_verification() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=2)
    m.observe(s, good(0.0, memory=97.0))
    m.observe(s, good(1.0, memory=97.0))
    assert [c.symptom.type for c in of(signals, Confirmed)] == [IncidentType.HIGH_MEMORY]  # type: ignore[attr-defined]
    m.own(KEY, incident_id=7)
    for at in (2.0, 2.3, 2.6, 2.9):  # the webhook restart answers 503 while it comes back
        m.observe(s, bad(at))
    m.observe(s, good(3.2))
    m.release(s, IncidentType.HIGH_MEMORY, recovered=True)
    assert len(of(signals, Confirmed)) == 1  # no second incident from those answers
    assert not of(signals, Cleared)  # the verification resolved it, not the monitor
    m.observe(s, good(4.0))
    m.observe(s, good(5.0, memory=97.0))  # after the release, counting starts afresh
    assert len(of(signals, Confirmed)) == 1


def test_a_crash_after_our_fix_is_a_crash_loop_not_flapping() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals, changes=2), spec(retries=2)
    at = 0.0
    for _ in range(5):  # crash, our restart recovers it, crash again ...
        m.observe(s, bad(at + 1, Failure.UNREACHABLE))
        m.observe(s, bad(at + 2, Failure.UNREACHABLE))
        m.own(KEY, 1)
        m.observe(s, good(at + 3))
        m.release(s, IncidentType.UNREACHABLE, recovered=True, restarted=True)
        m.observe(s, good(at + 4))
        at += 20
    confirmed = of(signals, Confirmed)
    assert [c.crash_loop for c in confirmed] == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]
    assert not of(signals, FlapStarted)


def test_an_exit_seen_after_verification_but_before_release_is_not_lost() -> None:
    """The agent saw the process exit while its verified restart still owned the probes
    (the incident was being resolved): the release must open the next incident."""
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=2)
    exit_evidence = "by the process's exit"
    m.observe(s, bad(1.0, Failure.UNREACHABLE), pushed=True, evidence=exit_evidence)
    m.own(KEY, 1)
    m.observe(s, good(2.0))
    m.observe(s, bad(3.0, Failure.UNREACHABLE), pushed=True, evidence=exit_evidence)
    assert len(of(signals, Confirmed)) == 1  # owned: nothing opens yet
    m.release(s, IncidentType.UNREACHABLE, recovered=True, restarted=True)
    confirmed = of(signals, Confirmed)
    assert len(confirmed) == 2
    assert confirmed[1].evidence == exit_evidence  # type: ignore[attr-defined]
    assert confirmed[1].crash_loop == 1  # type: ignore[attr-defined]


def test_an_exit_during_a_failed_verification_is_left_to_the_open_incident() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=2)
    m.observe(s, bad(1.0, Failure.UNREACHABLE), pushed=True, evidence="exit")
    m.own(KEY, 1)
    m.observe(s, bad(2.0, Failure.UNREACHABLE), pushed=True, evidence="exit")
    m.release(s, IncidentType.UNREACHABLE, recovered=False, restarted=True)
    assert len(of(signals, Confirmed)) == 1  # its heal loop acts again; no second incident


def test_failing_again_after_another_fix_recovered_it_is_flapping() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals, changes=4), spec(retries=2)
    at = 0.0
    for _ in range(2):  # our rollback "recovers" it, then it fails again: it flaps
        m.observe(s, bad(at + 1))
        m.observe(s, bad(at + 2))
        m.own(KEY, 1)
        m.observe(s, good(at + 3))
        m.release(s, IncidentType.HTTP_ERROR, recovered=True)
        at += 3
    assert [c.crash_loop for c in of(signals, Confirmed)] == [0, 0]  # type: ignore[attr-defined]
    assert len(of(signals, FlapStarted)) == 1


def test_a_failure_long_after_our_fix_is_not_a_crash_loop() -> None:
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=2)
    m.own(KEY, 1)
    m.release(s, IncidentType.UNREACHABLE, recovered=True, restarted=True)
    later = time.time() + 601
    m.observe(s, bad(later))
    m.observe(s, bad(later + 1))
    assert [c.crash_loop for c in of(signals, Confirmed)] == [0]  # type: ignore[attr-defined]


async def test_verification_decides_not_recovered_after_max_retries_breaching_probes() -> None:
    the_spec = spec(retries=2, interval=0.2)

    async def still_slow(_spec: ServiceSpec) -> Sample:
        return good(time.time(), latency_ms=5000.0)

    verifier = Verifier(still_slow, interval=0.05)
    started = time.time()
    result = await verifier.verify(
        the_spec, IncidentType.HIGH_LATENCY, started=started, timeout=30, grace=0.3
    )
    assert result.outcome is Outcome.NOT_RECOVERED
    # MAX_RETRIES x interval + grace is 0.7 s; the timeout would have been 30 s
    assert result.seconds < 0.7 + 0.3, result.seconds


async def test_verification_does_not_judge_a_restart_on_its_first_moment() -> None:
    the_spec = spec(retries=3, interval=1.0)
    began = time.time()

    async def restarting(_spec: ServiceSpec) -> Sample:
        # answers 503 for 0.8 s while it comes back, then healthy
        now = time.time()
        return bad(now) if now - began < 0.8 else good(now)

    result = await Verifier(restarting, interval=0.1).verify(
        the_spec, IncidentType.HTTP_ERROR, started=began, timeout=10
    )
    assert result.outcome is Outcome.RECOVERED


def test_a_heartbeat_does_not_make_a_probe_in_flight_late() -> None:
    # a heartbeat arrives while a probe of a hanging health URL is in flight:
    # both are news; the probe's failure still counts
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=2)
    m.observe(s, bad(10.0, Failure.TIMEOUT))
    m.observe(s, good(10.5), pushed=True)  # the heartbeat, received at 10.5
    m.observe(s, bad(10.2, Failure.TIMEOUT))  # the probe that started at 10.2
    state = m.state(KEY)
    assert state is not None
    assert state.status is ServiceStatus.DOWN


def test_a_service_taken_over_mid_fix_has_its_first_probes_owned() -> None:
    """A replica adopting an incident runs its fix before it ever probed the service:
    the first probes, taken while the fix runs, must not open a second incident."""
    signals: list[Signal] = []
    m, s = monitor(signals), spec(retries=1)
    m.own(KEY, 21)  # no probe of this service here yet
    m.observe(s, bad(1.0))
    m.release(s, IncidentType.HTTP_ERROR, recovered=True, restarted=True)
    m.observe(s, good(2.0))
    assert not of(signals, Confirmed)
