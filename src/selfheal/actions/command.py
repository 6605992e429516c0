"""Running a local command (``exec`` remediation from the config file, never from the API).

A string runs through ``/bin/sh -c``; a list runs as is. The command gets a
timeout (its whole process group is killed past it) and a clean environment:
``PATH``, ``HOME``, ``LANG``, the names its remediation entry lists under
``env:``, and ``SELFHEAL_*`` variables saying what it is fixing. The agent's own
secrets (``SECRET_KEY``, ``API_KEYS``, ``DATABASE_URL``) are never passed on.

Output is read from a pipe as it comes and only its last ``OUTPUT_LIMIT`` bytes
are kept, so a command printing gigabytes costs neither memory nor disk. A
command that starts a long-lived process (``restart``) may leave it running:
the action ends when the command itself exits, and the pipe is closed then (a
daemon it starts should send its output to its own log).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from selfheal.actions.base import OUTPUT_LIMIT, ActionRequest, ActionResult
from selfheal.errors import ActionError

# passed on from the agent's environment when set; everything else must be named in env:
BASE_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_CHUNK = 65_536


class CommandExecutor:
    """Runs the service's configured command for the action."""

    name = "exec"

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Run the command; exit status 0 is success."""
        remediation = request.spec.remediation.get(request.action)
        if remediation is None or remediation.exec is None:
            raise ActionError(f"no command configured for {request.action!r}")
        env = command_environment(remediation.env) | {
            "SELFHEAL_SERVICE_ID": request.spec.service_id,
            "SELFHEAL_INCIDENT_ID": str(request.incident_id),
            "SELFHEAL_ACTION": request.action,
            "SELFHEAL_ACTION_ID": str(request.action_id),
        }
        argv = (
            ["/bin/sh", "-c", remediation.exec]
            if isinstance(remediation.exec, str)
            else list(remediation.exec)
        )
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group, so a timeout kills all of it
            )
        except OSError as exc:
            os.close(read_fd)
            return ActionResult(False, f"could not start command: {exc.strerror}")
        finally:
            os.close(write_fd)  # the child holds its own copy
        tail = OutputTail(read_fd)
        try:
            code = await asyncio.wait_for(proc.wait(), request.timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            return ActionResult(
                False,
                f"command timed out after {request.timeout:g}s",
                {"output": tail.close()},
            )
        except BaseException:
            tail.close()
            raise
        data = {"exit_code": code, "output": tail.close()}
        if code == 0:
            return ActionResult(True, "command exited 0", data)
        return ActionResult(False, f"command exited {code}", data)


def command_environment(names: list[str] | tuple[str, ...] = ()) -> dict[str, str]:
    """The environment a command starts with: the basics plus the names it asked for."""
    env = {name: os.environ[name] for name in (*BASE_ENVIRONMENT, *names) if name in os.environ}
    env.setdefault("PATH", _DEFAULT_PATH)
    return env


class OutputTail:
    """Reads a pipe in the event loop as data arrives, keeping only its last ``limit`` bytes."""

    def __init__(self, fd: int, limit: int = OUTPUT_LIMIT) -> None:
        self._fd = fd
        self._limit = limit
        self._kept = bytearray()
        self.total = 0
        self._open = True
        os.set_blocking(fd, False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(fd, self._read_available)

    def _read_available(self) -> None:
        while self._open:
            try:
                chunk = os.read(self._fd, _CHUNK)
            except BlockingIOError:
                return
            if not chunk:  # every writer closed it
                self._stop()
                return
            self.total += len(chunk)
            self._kept += chunk
            if len(self._kept) > self._limit:
                del self._kept[: len(self._kept) - self._limit]

    def _stop(self) -> None:
        if self._open:
            self._open = False
            self._loop.remove_reader(self._fd)
            os.close(self._fd)

    def close(self) -> str:
        """Take what the command wrote before it exited, stop reading, return the tail."""
        self._read_available()
        self._stop()
        text = self._kept.decode(errors="replace")
        cut = self.total - len(self._kept)
        return f"[... {cut} bytes cut ...]\n{text}" if cut > 0 else text


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
