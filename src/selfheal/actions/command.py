"""Running a local command (``exec`` remediation from the config file, never from the API).

A string runs through ``/bin/sh -c``; a list runs as is. The command gets a
timeout (its whole process group is killed past it), its output is captured
and truncated, and it learns what it is fixing from ``SELFHEAL_*`` variables.
A command that starts a long-lived process (``restart``) may leave it running:
we stop reading output once the command itself has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from selfheal.actions.base import ActionRequest, ActionResult, truncate
from selfheal.errors import ActionError

_READ_AFTER_EXIT = 0.2


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
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own group, so a timeout kills all of it
            )
        except OSError as exc:
            return ActionResult(False, f"could not start command: {exc.strerror}")
        assert proc.stdout is not None
        chunks: list[bytes] = []
        reader = asyncio.create_task(_read_all(proc.stdout, chunks))
        try:
            code = await asyncio.wait_for(proc.wait(), request.timeout)
        except TimeoutError:
            _kill_group(proc.pid)
            await proc.wait()
            reader.cancel()
            output = truncate(b"".join(chunks).decode(errors="replace"))
            return ActionResult(
                False, f"command timed out after {request.timeout:g}s", {"output": output}
            )
        # children it started may keep the pipe open; do not wait for them
        try:
            await asyncio.wait_for(asyncio.shield(reader), _READ_AFTER_EXIT)
        except TimeoutError:
            reader.cancel()
        output = truncate(b"".join(chunks).decode(errors="replace"))
        data = {"exit_code": code, "output": output}
        if code == 0:
            return ActionResult(True, "command exited 0", data)
        return ActionResult(False, f"command exited {code}", data)


async def _read_all(stream: asyncio.StreamReader, chunks: list[bytes]) -> None:
    total = 0
    while chunk := await stream.read(65536):
        if total < 1_000_000:  # keep memory bounded whatever the command prints
            chunks.append(chunk)
            total += len(chunk)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
