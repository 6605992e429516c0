"""Which probe a service gets: the HTTP probe, or the check plugin its config names.

A service without ``check`` goes straight to the HTTP probe: ``__call__`` is a
plain function returning the HTTP probe's coroutine, so the hot path gains one
attribute test and no extra coroutine frame. A plugin check runs under a
deadline, and what it raises becomes a failed sample with the reason (so it
shows on the incident's timeline), never a dead probe loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import Any

from selfheal.checks.health_body import apply_health_data
from selfheal.checks.sample import Failure, Sample
from selfheal.checks.scheduler import Probe
from selfheal.logging import get_logger
from selfheal.plugin_api import Check, CheckResult, CheckTarget, PluginContext
from selfheal.plugins import Plugins
from selfheal.services import ServiceSpec
from selfheal.types import ServiceKey

log = get_logger(__name__)

GRACE = 1.0  # seconds past the check's own timeout before the agent cancels it
MAX_CACHED = 100_000  # validated options kept; removed services' entries go at this bound


class ProbeRouter:
    """A ``Probe`` that sends each service to the check it is configured with."""

    def __init__(self, http: Probe, plugins: Plugins, context: PluginContext) -> None:
        self._http = http
        self._plugins = plugins
        self._context = context
        self._checks: dict[str, Check] = {}
        # validated options per service, kept while its spec's check mapping is the same
        self._options: dict[ServiceKey, tuple[Mapping[str, Any], Any]] = {}

    def __call__(self, spec: ServiceSpec) -> Awaitable[Sample]:
        """The probe for this spec (not a coroutine function: see the module docstring)."""
        if spec.check is None:
            return self._http(spec)
        return self._plugin(spec, spec.check)

    def options(self, name: str, check: Mapping[str, Any]) -> Any:
        """A check's options validated by its plugin's model (``type`` left out)."""
        factory = self._plugins.checks.get(name)
        if factory is None:
            raise self._plugins.missing("checks", name)
        model = factory.options_model
        data = {k: v for k, v in check.items() if k != "type"}
        return model.model_validate(data) if model is not None else None

    def _check(self, name: str) -> Check:
        check = self._checks.get(name)
        if check is None:
            factory = self._plugins.checks.get(name)
            if factory is None:
                raise self._plugins.missing("checks", name)
            check = self._checks[name] = factory(self._context)
        return check

    async def _plugin(self, spec: ServiceSpec, config: Mapping[str, Any]) -> Sample:
        started_wall = time.time()
        started = time.perf_counter()
        name = str(config["type"])
        try:
            cached = self._options.get(spec.key)
            if cached is None or cached[0] is not config:
                if len(self._options) >= MAX_CACHED:
                    self._options.clear()
                cached = self._options[spec.key] = (config, self.options(name, config))
            target = CheckTarget(service=spec.info, options=cached[1], timeout=spec.timeout)
            result = await asyncio.wait_for(self._check(name).check(target), spec.timeout + GRACE)
        except TimeoutError:
            return _failed(spec, started_wall, started, Failure.TIMEOUT, f"{name} check hung")
        except Exception as exc:
            log.warning("check_plugin_failed", check=name, error=f"{type(exc).__name__}: {exc}")
            reason = f"{name} check raised {type(exc).__name__}: {exc}"[:500]
            return _failed(spec, started_wall, started, Failure.UNREACHABLE, reason)
        return _sample(spec, started_wall, result)


def _failed(spec: ServiceSpec, at: float, started: float, failure: Failure, error: str) -> Sample:
    elapsed = (time.perf_counter() - started) * 1000.0
    return Sample(spec.key, at, False, elapsed, failure=failure, error=error)


def _sample(spec: ServiceSpec, at: float, result: CheckResult) -> Sample:
    failure: Failure | None = None
    error = result.error
    if not result.ok:
        try:
            failure = Failure(result.failure or Failure.UNREACHABLE.value)
        except ValueError:
            failure = Failure.UNREACHABLE
            error = f"{error or 'check failed'} (unknown failure kind {result.failure!r})"
    sample = Sample(spec.key, at, result.ok, result.response_ms, failure=failure, error=error)
    if result.health:
        apply_health_data(sample, result.health)
    return sample
