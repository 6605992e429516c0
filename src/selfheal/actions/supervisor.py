"""Supervised processes: the agent starts them, hears of their exit at once, restarts them.

The agent is the parent, so an exit is an ``await proc.wait()`` that returns
(asyncio's child watcher), not a poll. An exit the agent did not ask for is
reported through ``on_exit``; the runtime turns it into a conclusive failed
sample, and the heal loop then restarts the process through ``ProcessExecutor``
under the restart backoff and verifies it like any other fix.

Each process runs in its own session (process group): stopping it signals the
whole group with its ``stop_signal``, then SIGKILL after ``stop_timeout``; when
the leader dies, what is left of its group is killed too, so an orphan cannot
keep the port the next start needs. stdout and stderr are read through pipes
into size-capped rotating files. The pid of each process is kept in a file
beside its logs: processes left running by an agent that was killed (they
have their own sessions, so they outlive it) are killed before the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from selfheal.actions.base import ActionRequest, ActionResult
from selfheal.actions.command import command_environment
from selfheal.actions.logfiles import RotatingLog
from selfheal.configfile import ProcessConfig
from selfheal.errors import ActionError
from selfheal.logging import get_logger
from selfheal.types import ServiceKey

log = get_logger(__name__)

OnExit = Callable[[ServiceKey, str], None]
# what a supervised process inherits beyond the exec basics (no secrets)
INHERITED_ENV = ("TMPDIR", "USER")
READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A supervised process as the API shows it."""

    pid: int | None
    running: bool
    started_at: float | None
    restarts: int
    last_exit: str | None
    stdout_log: str
    stderr_log: str


@dataclass
class _Managed:
    config: ProcessConfig
    stdout: RotatingLog
    stderr: RotatingLog
    proc: asyncio.subprocess.Process | None = None
    started_at: float | None = None
    restarts: int = 0
    last_exit: str | None = None
    stopping: bool = False  # an exit we asked for is not news
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class Supervisor:
    """Starts, watches, restarts and stops the processes of supervised services."""

    def __init__(self, *, log_dir: Path, on_exit: OnExit) -> None:
        self._log_dir = log_dir
        self._on_exit = on_exit
        self._managed: dict[ServiceKey, _Managed] = {}  # in start order
        self._locks: dict[ServiceKey, asyncio.Lock] = {}

    def __contains__(self, key: ServiceKey) -> bool:
        return key in self._managed

    def info(self, key: ServiceKey) -> ProcessInfo | None:
        """Pid, state and log files of a supervised process (None: not supervised)."""
        managed = self._managed.get(key)
        if managed is None:
            return None
        proc = managed.proc
        running = proc is not None and proc.returncode is None
        return ProcessInfo(
            pid=proc.pid if proc is not None else None,
            running=running,
            started_at=managed.started_at,
            restarts=managed.restarts,
            last_exit=managed.last_exit,
            stdout_log=str(managed.stdout.path),
            stderr_log=str(managed.stderr.path),
        )

    async def start(self, key: ServiceKey, config: ProcessConfig) -> int:
        """Start a service's process (stopping an older one first); returns its pid."""
        async with self._lock(key):
            managed = self._managed.get(key)
            if managed is not None:
                await self._terminate(managed)
                managed.config = config
            else:
                base = self._log_dir / key.tenant_id / key.service_id
                _kill_leftover(Path(f"{base}.pid"), config.command)
                size, backups = config.log_max_bytes, config.log_backups
                managed = _Managed(
                    config,
                    RotatingLog(Path(f"{base}.stdout.log"), size, backups),
                    RotatingLog(Path(f"{base}.stderr.log"), size, backups),
                )
                self._managed[key] = managed
            return await self._spawn(key, managed)

    async def restart(self, key: ServiceKey) -> int:
        """Stop (if still running) and start again; returns the new pid."""
        async with self._lock(key):
            managed = self._managed.get(key)
            if managed is None:
                raise ActionError(f"service {key.service_id!r} has no supervised process")
            await self._terminate(managed)
            managed.restarts += 1
            return await self._spawn(key, managed)

    async def stop(self, key: ServiceKey) -> None:
        """Stop a process and forget it (the service left the config)."""
        async with self._lock(key):
            managed = self._managed.pop(key, None)
            if managed is not None:
                await self._terminate(managed)
                _pid_file(managed).unlink(missing_ok=True)
                managed.stdout.close()
                managed.stderr.close()

    async def stop_all(self) -> None:
        """Stop every process, one at a time, the last started first."""
        for key in reversed(list(self._managed)):
            await self.stop(key)

    def _lock(self, key: ServiceKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _spawn(self, key: ServiceKey, managed: _Managed) -> int:
        config = managed.config
        env = command_environment(INHERITED_ENV)
        try:
            proc = await asyncio.create_subprocess_exec(
                *config.command,
                cwd=config.cwd,
                env=env | config.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own group: stopped and cleaned up as one
            )
        except OSError as exc:
            managed.proc = None
            managed.last_exit = f"could not start: {exc.strerror}"
            raise ActionError(
                f"could not start {config.command[0]!r} for {key.service_id}: {exc.strerror}"
            ) from None
        managed.proc, managed.started_at, managed.stopping = proc, time.time(), False
        pid_file = _pid_file(managed)
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(proc.pid))
        assert proc.stdout is not None
        assert proc.stderr is not None
        # a fresh context: these outlive the action that started them, and its log
        # context (incident, action ids) must not stick to the process's later lines
        managed.tasks = [
            asyncio.create_task(coro, name=f"{what}:{key}", context=contextvars.Context())
            for what, coro in (
                ("stdout", _pump(proc.stdout, managed.stdout)),
                ("stderr", _pump(proc.stderr, managed.stderr)),
                ("process", self._watch(key, managed, proc)),
            )
        ]
        log.info("process_started", service_id=key.service_id, pid=proc.pid)
        return proc.pid

    async def _watch(
        self, key: ServiceKey, managed: _Managed, proc: asyncio.subprocess.Process
    ) -> None:
        code = await proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # leftovers of its group go with it
        managed.last_exit = describe_exit(code)
        if managed.stopping or managed.proc is not proc:
            return
        log.warning("process_exited", service_id=key.service_id, pid=proc.pid, exit=code)
        self._on_exit(key, managed.last_exit)

    async def _terminate(self, managed: _Managed) -> None:
        proc = managed.proc
        if proc is None:
            return
        managed.stopping = True
        if proc.returncode is None:
            _signal_group(proc.pid, signal.Signals["SIG" + managed.config.stop_signal])
            try:
                await asyncio.wait_for(proc.wait(), managed.config.stop_timeout)
            except TimeoutError:
                log.warning("process_stop_timeout", pid=proc.pid, killing=True)
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        # the watcher has killed the rest of the group; the pumps end at EOF
        await asyncio.gather(*managed.tasks, return_exceptions=True)


class ProcessExecutor:
    """``restart`` of a supervised process, done by the agent itself."""

    name = "process"

    def __init__(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Restart the process; healthy or not is the verifier's to say."""
        if request.action != "restart":
            raise ActionError(f"a supervised process cannot {request.action!r}")
        pid = await self._supervisor.restart(request.spec.key)
        return ActionResult(True, f"process restarted (pid {pid})", {"pid": pid})


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``killed by SIGKILL``, from a return code."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


async def _pump(stream: asyncio.StreamReader, sink: RotatingLog) -> None:
    while chunk := await stream.read(READ_CHUNK):
        sink.write(chunk)


def _pid_file(managed: _Managed) -> Path:
    return managed.stdout.path.with_name(managed.stdout.path.name.replace(".stdout.log", ".pid"))


def _kill_leftover(pid_file: Path, command: list[str]) -> None:
    """Kill the group of a process a previous agent started and left running.

    Only if that pid still runs the same command: a pid the system has since
    given to another program is left alone.
    """
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except (OSError, ValueError):
        return
    if [part.decode(errors="replace") for part in cmdline] == command:
        log.warning("process_leftover_killed", pid=pid, command=command[0])
        _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
