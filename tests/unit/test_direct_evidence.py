"""The fast lane: a failure the agent saw itself opens an incident on one sample."""

from __future__ import annotations

import time
from pathlib import Path

from selfheal.checks.sample import Failure, Sample
from selfheal.config import Settings
from selfheal.detectors.monitor import Confirmed, Monitor, Signal
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import IncidentType, ServiceKey


def _spec(tmp_path: Path) -> ServiceSpec:
    settings = Settings(_env_file=None, DATA_DIR=tmp_path, MAX_RETRIES=3)  # type: ignore[call-arg]
    return build_spec(
        settings, key=ServiceKey("default", "w"), name="w", health_url="http://127.0.0.1:1/"
    )


def _down(spec: ServiceSpec) -> Sample:
    return Sample(spec.key, time.time(), False, 0.0, failure=Failure.UNREACHABLE, error="x")


def test_one_probe_failure_waits_for_retries_but_an_exit_does_not(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    signals: list[Signal] = []
    monitor = Monitor(on_signal=signals.append)
    monitor.track(spec.key)
    monitor.observe(spec, _down(spec))
    assert not [s for s in signals if isinstance(s, Confirmed)]  # 1 of 3 bad probes

    monitor.observe(spec, _down(spec), pushed=True, evidence="by the process's exit")
    confirmed = [s for s in signals if isinstance(s, Confirmed)]
    assert len(confirmed) == 1
    assert confirmed[0].symptom.type is IncidentType.UNREACHABLE
    assert confirmed[0].evidence == "by the process's exit"


def test_an_exit_counts_inside_a_restart_grace(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    signals: list[Signal] = []
    monitor = Monitor(on_signal=signals.append)
    monitor.track(spec.key)
    monitor.start_grace(spec.key, 60)
    for _ in range(5):
        monitor.observe(spec, _down(spec))  # probes in grace neither open nor clear
    assert not [s for s in signals if isinstance(s, Confirmed)]
    monitor.observe(spec, _down(spec), pushed=True, evidence="by the process's exit")
    assert len([s for s in signals if isinstance(s, Confirmed)]) == 1
