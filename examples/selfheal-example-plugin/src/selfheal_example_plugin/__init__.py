"""An example selfheal plugin: an executor that calls an HTTP endpoint, and a banner check.

It imports only ``selfheal.plugin_api`` (the public plugin API) and pydantic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from selfheal.plugin_api import (
    API_VERSION,
    ActionRequest,
    ActionResult,
    CheckResult,
    CheckTarget,
    PluginContext,
)

__all__ = ["BannerCheck", "BannerOptions", "HttpCallExecutor", "HttpCallOptions"]


class HttpCallOptions(BaseModel):
    """Per-service options of ``example_http``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://")
    method: Literal["GET", "POST", "PUT"] = "POST"
    expect_status: int = Field(default=200, ge=100, le=599)


class HttpCallExecutor:
    """Carries an action out by calling one URL; the expected status is success."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel]] = HttpCallOptions

    def __init__(self, context: PluginContext) -> None:
        self._http = context.http  # the agent's shared client: no env proxies

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Call the URL once, with the action's name and parameters as JSON."""
        options: HttpCallOptions = request.options
        body = {
            "action": request.action,
            "params": request.params,
            "incident_id": request.incident_id,
            "idempotency_key": request.idempotency_key,
        }
        try:
            response = await self._http.request(
                options.method, options.url, json=body, timeout=request.timeout
            )
        except httpx.HTTPError as exc:
            return ActionResult(False, f"{options.url} unreachable: {type(exc).__name__}")
        ok = response.status_code == options.expect_status
        detail = f"{options.method} {options.url} answered {response.status_code}"
        return ActionResult(ok, detail, {"status_code": response.status_code})


class BannerOptions(BaseModel):
    """Options of ``example_banner``."""

    model_config = ConfigDict(extra="forbid")

    address: str = Field(pattern=r"^[^:]+:\d+$")  # host:port
    expect: str = Field(min_length=1)


class BannerCheck:
    """Healthy when the first line a TCP server sends starts with ``expect``."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel]] = BannerOptions

    def __init__(self, context: PluginContext) -> None:
        del context

    async def check(self, target: CheckTarget) -> CheckResult:
        """Connect, read one line, compare."""
        options: BannerOptions = target.options
        host, port = options.address.rsplit(":", 1)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                reader, writer = await asyncio.open_connection(host, int(port))
                line = await reader.readline()
        except TimeoutError:
            return CheckResult(False, _ms(started), failure="timeout", error="no banner in time")
        except OSError as exc:
            return CheckResult(False, _ms(started), failure="unreachable", error=str(exc))
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        banner = line.decode(errors="replace").strip()
        if banner.startswith(options.expect):
            return CheckResult(True, _ms(started))
        error = f"banner {banner[:80]!r} does not start with {options.expect!r}"
        return CheckResult(False, _ms(started), failure="unreachable", error=error)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
