"""Flap tracking, action slots, restart backoff, policies, dependency walking."""

from __future__ import annotations

import asyncio
import time

import pytest

from selfheal.config import Settings
from selfheal.configfile import BackoffConfig, PoliciesConfig
from selfheal.decisions.limits import ActionSlots, RestartBackoff
from selfheal.decisions.policy import resolve
from selfheal.detectors.flapping import FlapTracker
from selfheal.incidents.grouping import Grouper
from selfheal.services import ServiceSpec, build_spec
from selfheal.types import ServiceKey, ServiceStatus, Severity

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def spec(service_id: str, depends_on: tuple[str, ...] = (), **kw: object) -> ServiceSpec:
    return build_spec(
        SETTINGS,
        key=ServiceKey("t", service_id),
        name=None,
        health_url="http://127.0.0.1:1/h",
        depends_on=depends_on,
        **kw,  # type: ignore[arg-type]
    )


def test_flap_tracker_needs_enough_changes_inside_the_window() -> None:
    flaps = FlapTracker()
    assert not any(flaps.record_change(t, threshold=4, window=10) for t in (0, 20, 40))
    started = [flaps.record_change(t, threshold=4, window=10) for t in (50, 52, 54, 56)]
    assert started == [False, False, False, True]
    assert not flaps.record_change(57, threshold=4, window=10)  # once
    assert not flaps.settled(60, window=10)
    assert flaps.settled(67, window=10)
    assert not flaps.flapping


async def test_action_slots_follow_the_smaller_limit() -> None:
    fleet = [10]
    slots = ActionSlots(max_concurrent=5, max_fleet_fraction=0.2, fleet_size=lambda: fleet[0])
    assert slots.limit == 2
    fleet[0] = 100
    assert slots.limit == 5
    fleet[0] = 1
    assert slots.limit == 1  # never zero
    fleet[0] = 10
    peak = 0

    async def work() -> None:
        nonlocal peak
        async with slots.hold():
            peak = max(peak, slots.in_use)
            await asyncio.sleep(0.05)

    await asyncio.gather(*(work() for _ in range(7)))
    assert peak == 2
    assert slots.in_use == 0
    assert (
        ActionSlots(max_concurrent=None, max_fleet_fraction=None, fleet_size=lambda: 3).limit
        is None
    )


def test_restart_backoff_doubles_to_a_cap_and_resets_when_healthy() -> None:
    healthy_since: dict[ServiceKey, float | None] = {}
    key = ServiceKey("t", "s")
    backoff = RestartBackoff(BackoffConfig(initial=10, max=25, reset_after=60), healthy_since.get)
    assert backoff.wait(key) == 0
    delays = [backoff.restarted(key) for _ in range(4)]
    assert 9 <= delays[0] <= 11
    assert 18 <= delays[1] <= 22
    assert 22.5 <= delays[2] <= 27.5
    assert 22.5 <= delays[3] <= 27.5
    assert backoff.wait(key) > 20
    assert backoff.restarts_in_a_row(key) == 4
    healthy_since[key] = time.time() - 61
    assert backoff.wait(key) == 0
    assert backoff.restarts_in_a_row(key) == 0


def test_policies_resolve_defaults_and_overrides() -> None:
    defaults = resolve(SETTINGS)
    assert (defaults.dry_run, defaults.max_attempts, defaults.breaker.failures) == (False, 3, 3)
    assert defaults.max_concurrent_actions is None
    custom = resolve(
        SETTINGS,
        PoliciesConfig.model_validate(
            {
                "dry_run": True,
                "max_attempts": 5,
                "grace": "10s",
                "approval": {"severities": ["critical"], "actions": ["rollback"]},
            }
        ),
    )
    assert custom.dry_run_for(spec("a")) is True
    assert custom.dry_run_for(spec("b", dry_run=False)) is False
    assert custom.grace_for(spec("a")) == 10
    assert custom.grace_for(spec("b", grace=0.0)) == 0
    assert custom.needs_approval("rollback", Severity.LOW) is not None
    assert custom.needs_approval("restart", Severity.CRITICAL) is not None
    assert custom.needs_approval("restart", Severity.HIGH) is None


def test_grouper_walks_dependencies_nearest_first_and_survives_cycles() -> None:
    specs = {
        s.service_id: s
        for s in [
            spec("web", ("api",)),
            spec("api", ("db", "cache")),
            spec("db", ("api",)),  # a cycle must not loop forever
            spec("cache"),
            spec("other"),
        ]
    }
    status = {"db": ServiceStatus.DOWN}
    grouper = Grouper(
        specs=specs.values,
        spec_of=lambda key: specs.get(key.service_id),
        status_of=lambda key: status.get(key.service_id, ServiceStatus.UP),
        window=30,
    )
    assert grouper.dependencies(specs["web"]) == ["api", "db", "cache"]
    assert grouper.unhealthy_dependency(specs["web"]) == "db"
    assert grouper.unhealthy_dependency(specs["cache"]) is None
    assert sorted(grouper.dependants(specs["db"])) == ["api", "web"]
    assert grouper.dependants(specs["other"]) == []


@pytest.mark.parametrize("bad", [{"breaker": {"failures": 0}}, {"max_fleet_fraction": 1.5}])
def test_bad_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"greater than|less than"):
        PoliciesConfig.model_validate(bad)
