"""The ``tcp`` check: can a connection be opened, and how long did it take?

``check: {type: tcp, address: 127.0.0.1:5432}``. Refused is ``connect_refused``,
no answer within the service's timeout is ``connect_timeout``; both are
incident types of their own. The connection is closed at once (no payload).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from selfheal.checks.address import Address
from selfheal.plugin_api import API_VERSION, CheckResult, CheckTarget, PluginContext


class TcpOptions(BaseModel):
    """Options of the ``tcp`` check."""

    model_config = ConfigDict(extra="forbid")

    address: Address


class TcpCheck:
    """Opens (and closes) one TCP connection per probe."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel]] = TcpOptions

    def __init__(self, context: PluginContext) -> None:
        del context  # needs nothing from the agent

    async def check(self, target: CheckTarget) -> CheckResult:
        """Connect once within the timeout."""
        options: TcpOptions = target.options
        host, port = options.address
        started = time.perf_counter()
        try:
            async with asyncio.timeout(target.timeout):
                _, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            return CheckResult(
                False,
                _ms(started),
                failure="connect_timeout",
                error=f"no connection to {host}:{port} within {target.timeout:g}s",
            )
        except ConnectionRefusedError:
            return CheckResult(
                False, _ms(started), failure="connect_refused", error=f"{host}:{port} refused"
            )
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            return CheckResult(False, _ms(started), failure="unreachable", error=reason)
        elapsed = _ms(started)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return CheckResult(True, elapsed)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
