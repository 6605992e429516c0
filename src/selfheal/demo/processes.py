"""Starting, restarting and stopping demo service processes, tracked by pid files.

The agent's ``exec`` remediation for the demo calls ``python -m
selfheal.demo.processes restart STATE_DIR NAME``: the same code the demo uses
to start a service, so a restarted service is exactly like the original,
minus its fault.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def spec_path(state: Path, name: str) -> Path:
    """Where a service's start parameters are kept."""
    return state / f"{name}.json"


def pid_path(state: Path, name: str) -> Path:
    """Where a service's current pid is kept."""
    return state / f"{name}.pid"


def start(state: Path, name: str, *, fault: str | None = None, after: float = 0.0) -> int:
    """Start (or start again) a service in its own session; returns its pid."""
    spec: dict[str, Any] = json.loads(spec_path(state, name).read_text())
    argv = [
        sys.executable,
        "-m",
        "selfheal.demo.service",
        "--name",
        name,
        "--port",
        str(spec["port"]),
        "--pidfile",
        str(pid_path(state, name)),
    ]
    if fault:
        argv += ["--fault", fault, "--after", str(after)]
    log = (state / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=os.environ | {"SELFHEAL_DEMO_SECRET": spec["secret"]},
        start_new_session=True,  # outlives the restart command that spawned it
    )
    pid_path(state, name).write_text(str(proc.pid))
    return proc.pid


def stop(state: Path, name: str) -> None:
    """Kill a service if its pid file names a live process."""
    path = pid_path(state, name)
    if not path.exists():
        return
    try:
        pid = int(path.read_text().strip())
        os.kill(pid, signal.SIGKILL)
    except (ValueError, ProcessLookupError, PermissionError):
        pass


def wait_listening(port: int, timeout: float) -> bool:
    """True once something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def restart(state: Path, name: str) -> int:
    """Kill whatever runs (a hung process included) and start a fresh, healthy one."""
    stop(state, name)
    port = json.loads(spec_path(state, name).read_text())["port"]
    # the old process may still hold the port for a moment after SIGKILL
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) != 0:
                break
        time.sleep(0.05)
    start(state, name)
    if not wait_listening(port, 5.0):
        print(f"{name} did not start listening on port {port}", file=sys.stderr)
        return 1
    print(f"{name} restarted, listening on port {port}")
    return 0


def stop_all(state: Path) -> None:
    """Kill every demo service recorded in the state directory."""
    for path in state.glob("*.pid"):
        stop(state, path.stem)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "restart":
        print("usage: python -m selfheal.demo.processes restart STATE_DIR NAME", file=sys.stderr)
        sys.exit(2)
    sys.exit(restart(Path(args[1]), args[2]))


if __name__ == "__main__":
    main()
