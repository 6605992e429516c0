"""The ``exec`` check: run a command; exit status 0 is healthy.

``check: {type: exec, command: [pg_isready, -h, 127.0.0.1], env: {PGUSER: x}}``.
If the command prints a JSON object, it may carry the fields of the health JSON
(``status``, ``cpu``, ``memory``, ``error_rate``, ``latency_ms``), checked against
the service's thresholds as an HTTP health body's are.

The command starts with a clean environment (``PATH`` and what ``env`` gives,
never the agent's own variables, which may hold secrets), in its own process
group that is killed whole at the timeout; its output goes to a temporary file
of which only the first ``max_output`` bytes are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
from typing import IO, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfheal.plugin_api import API_VERSION, CheckResult, CheckTarget, PluginContext

CLEAN_PATH = "/usr/local/bin:/usr/bin:/bin"


class ExecOptions(BaseModel):
    """Options of the ``exec`` check."""

    model_config = ConfigDict(extra="forbid")

    command: str | list[str]  # a string runs through /bin/sh -c, a list as is
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    max_output: int = Field(default=65_536, ge=1, le=1_048_576)

    @field_validator("command")
    @classmethod
    def _non_empty(cls, value: str | list[str]) -> str | list[str]:
        if not value:
            raise ValueError("command must not be empty")
        return value


class ExecCheck:
    """Runs the command once per probe."""

    api_version: ClassVar[int] = API_VERSION
    options_model: ClassVar[type[BaseModel]] = ExecOptions

    def __init__(self, context: PluginContext) -> None:
        del context

    async def check(self, target: CheckTarget) -> CheckResult:
        """Run, wait at most the timeout, read the bounded output."""
        options: ExecOptions = target.options
        argv = (
            ["/bin/sh", "-c", options.command]
            if isinstance(options.command, str)
            else options.command
        )
        env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8"} | options.env
        started = time.perf_counter()
        # a file, not a pipe: a daemon the command leaves behind must not hold it open
        with tempfile.TemporaryFile() as out:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    cwd=options.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                error = f"could not start {argv[0]}: {exc.strerror or type(exc).__name__}"
                return CheckResult(False, _ms(started), failure="exec_failed", error=error)
            try:
                code = await asyncio.wait_for(proc.wait(), target.timeout)
            except asyncio.CancelledError:
                _kill_group(proc.pid)  # the agent gave up on it: leave nothing running
                raise
            except TimeoutError:
                _kill_group(proc.pid)
                await proc.wait()
                return CheckResult(
                    False,
                    _ms(started),
                    failure="exec_timeout",
                    error=f"command did not exit within {target.timeout:g}s",
                )
            elapsed = _ms(started)
            output = _head(out, options.max_output)
        health = _health(output)
        if code == 0:
            return CheckResult(True, elapsed, health=health)
        tail = output.decode(errors="replace").strip()[-300:]
        error = f"command exited {code}" + (f": {tail}" if tail else "")
        return CheckResult(False, elapsed, failure="exec_failed", error=error, health=health)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _head(file: IO[bytes], limit: int) -> bytes:
    file.seek(0)
    return file.read(limit)


def _health(output: bytes) -> dict[str, Any] | None:
    """The health fields of a JSON object on stdout, if that is what it printed."""
    text = output.strip()
    if not text.startswith(b"{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
