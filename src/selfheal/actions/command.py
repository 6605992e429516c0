"""Running a local command (``exec`` remediation from the config file, never from the API).

A string runs through ``/bin/sh -c``; a list runs as is. The command gets a
timeout (its whole process group is killed past it), its output is captured
and truncated, and it learns what it is fixing from ``SELFHEAL_*`` variables.
A command that starts a long-lived process (``restart``) may leave it running:
the action ends when the command itself exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
from typing import IO

from selfheal.actions.base import OUTPUT_LIMIT, ActionRequest, ActionResult, truncate
from selfheal.errors import ActionError


class CommandExecutor:
    """Runs the service's configured command for the action."""

    name = "exec"

    async def execute(self, request: ActionRequest) -> ActionResult:
        """Run the command; exit status 0 is success."""
        remediation = request.spec.remediation.get(request.action)
        if remediation is None or remediation.exec is None:
            raise ActionError(f"no command configured for {request.action!r}")
        env = os.environ | {
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
        # output goes to an unlinked temporary file, not a pipe: a daemon the command
        # starts inherits its stdout, and a pipe would keep the command "running"
        with tempfile.TemporaryFile() as output_file:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *argv,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output_file,
                    stderr=asyncio.subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # its own group, so a timeout kills all of it
                )
            except OSError as exc:
                return ActionResult(False, f"could not start command: {exc.strerror}")
            try:
                code = await asyncio.wait_for(proc.wait(), request.timeout)
            except TimeoutError:
                _kill_group(proc.pid)
                await proc.wait()
                return ActionResult(
                    False,
                    f"command timed out after {request.timeout:g}s",
                    {"output": _tail(output_file)},
                )
            output = _tail(output_file)
        data = {"exit_code": code, "output": output}
        if code == 0:
            return ActionResult(True, "command exited 0", data)
        return ActionResult(False, f"command exited {code}", data)


def _tail(file: IO[bytes]) -> str:
    """The end of what the command printed (errors are usually last)."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - 4 * OUTPUT_LIMIT))
    text = file.read().decode(errors="replace")
    if size > 4 * OUTPUT_LIMIT:
        text = "." * (size - len(text)) + text  # keep the true length for the cut marker
    return truncate(text)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
