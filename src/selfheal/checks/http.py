"""HTTP(S) probes over shared aiohttp sessions (the hot path of the agent).

aiohttp costs about a quarter of httpx's CPU per request here, and the probe
loop is where the agent spends its time. Each tenant's probes go through the
session of its outbound policy (``selfheal.outbound``), which refuses forbidden
addresses at connect time; redirects are never followed. Any 2xx within the
timeout is up; anything else is a classified failure. Of the answer only the
status and the contract's health figures are used, never its raw text.
"""

from __future__ import annotations

import asyncio
import ssl
import time

import aiohttp

from selfheal.checks.health_body import MAX_BODY_BYTES, apply_health_body
from selfheal.checks.sample import Failure, Sample
from selfheal.outbound import OutboundSessions
from selfheal.services import ServiceSpec


class HttpProbe:
    """Probe a service's health URL once."""

    def __init__(self, sessions: OutboundSessions) -> None:
        self._sessions = sessions
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # one ClientTimeout per distinct value, not one per probe
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def __call__(self, spec: ServiceSpec) -> Sample:
        """One probe: never raises, always a Sample."""
        started_wall = time.time()
        started = time.perf_counter()
        try:
            async with self._sessions.for_tenant(spec.tenant_id).get(
                spec.health_url, timeout=self._timeout(spec.timeout), allow_redirects=False
            ) as response:
                body = await response.content.read(MAX_BODY_BYTES)
                status = response.status
        except TimeoutError:
            return Sample(
                spec.key,
                started_wall,
                False,
                (time.perf_counter() - started) * 1000.0,
                failure=Failure.TIMEOUT,
                error=f"no answer within {spec.timeout:g}s",
            )
        except (aiohttp.ClientError, OSError, ssl.SSLError, ValueError) as exc:
            return Sample(
                spec.key,
                started_wall,
                False,
                (time.perf_counter() - started) * 1000.0,
                failure=Failure.UNREACHABLE,
                error=_describe(exc),
            )
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        if 200 <= status < 300:
            sample = Sample(spec.key, started_wall, True, elapsed_ms, status_code=status)
            apply_health_body(sample, body)
            return sample
        sample = Sample(
            spec.key,
            started_wall,
            False,
            elapsed_ms,
            status_code=status,
            failure=Failure.HTTP_ERROR,
            error=f"HTTP {status}",
        )
        apply_health_body(sample, body)
        return sample


def _describe(exc: BaseException) -> str:
    """A short, secret-free reason; URLs may carry credentials, so they are left out."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | ssl.SSLError):
        return "TLS certificate or handshake failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed: {exc.os_error.strerror or type(exc.os_error).__name__}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return type(exc).__name__


__all__ = ["HttpProbe"]
