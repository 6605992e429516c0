"""SIGKILL of a supervised process to HTTP 200 from its new process: selfheal vs supervisord.

Both supervise the same command (``tests/procs/tiny_http.py PORT``, a stdlib
HTTP server that answers with its pid) in the same run. Each trial waits until
the service answers and (for selfheal) no incident is open, kills the process
with SIGKILL, then polls ``GET /`` every 5 ms from this process until a 200
comes from a different pid. selfheal runs as ``selfheal serve`` in its own
process with a throwaway SQLite database; supervisord runs with its own
temporary config (``autorestart=true``), never the system one.

selfheal's restart goes the whole way a fix goes: incident opened, decision,
action written down, ``process`` executor, verification. The restart backoff
is set to 0 and the cooldown to 0 so that every trial restarts at once, as
supervisord does for a process that ran past ``startsecs`` (with the default
backoff, the first restart is immediate and later ones wait 10 s, 20 s, ...).
Flap detection is off too: ten kills within minutes are, by default, a
flapping service that people should look at, and automation stops for it.

Usage, from the repository root (supervisord from Debian's ``supervisor``)::

    python benchmarks/supervisor_restart.py [--trials 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TINY_HTTP = REPO / "tests" / "procs" / "tiny_http.py"
POLL = 0.005


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get(port: int, path: str = "/", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of one GET on loopback; (0, b"") when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


def pid_behind(port: int) -> int | None:
    """The pid that answers on the port, or None."""
    status, body = get(port)
    return int(json.loads(body)["pid"]) if status == 200 else None


def wait_until(check: object, timeout: float, what: str) -> object:
    """Poll ``check()`` until truthy; fail loudly after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def trial(port: int) -> float:
    """Kill whatever answers on the port; seconds until a new pid answers 200."""
    old = wait_until(lambda: pid_behind(port), 20, "the service to answer")
    assert isinstance(old, int)
    os.kill(old, signal.SIGKILL)
    killed = time.perf_counter()
    while True:
        pid = pid_behind(port)
        if pid is not None and pid != old:
            return time.perf_counter() - killed
        if time.perf_counter() - killed > 30:
            raise SystemExit("the process was not restarted within 30 s")
        time.sleep(POLL)


def run_selfheal(work: Path, trials: int) -> list[float]:
    """Trials under ``selfheal serve`` supervising the tiny server."""
    port, api_port, key = free_port(), free_port(), "bench_" + secrets.token_hex(8)
    config = work / "selfheal.yaml"
    service = {
        "id": "worker",
        "health_url": f"http://127.0.0.1:{port}/health",
        "process": {"command": [sys.executable, str(TINY_HTTP), str(port)]},
    }
    policies = {"cooldown": 0, "restart_backoff": {"initial": 0}, "flapping": {"enabled": False}}
    config.write_text(json.dumps({"services": [service], "policies": policies}))
    env = {name: value for name, value in os.environ.items() if not name.startswith("SELFHEAL")}
    env |= {
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'selfheal.db'}",
        "DATA_DIR": str(work / "data"),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "API_KEYS": key,
        "LOG_LEVEL": "WARNING",
    }
    log = (work / "selfheal.log").open("wb")
    serve = ["serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(api_port)]
    agent = subprocess.Popen(
        [sys.executable, "-m", "selfheal.cli.main", *serve],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    headers = {"X-API-Key": key}

    def settled() -> bool:
        status, body = get(api_port, "/api/incidents?service_id=worker&limit=5", headers)
        if status != 200:
            return False
        open_ = [i for i in json.loads(body)["data"] if i["status"] != "resolved"]
        return not open_

    try:
        times = []
        for _ in range(trials):
            wait_until(settled, 30, "the last incident to be resolved")
            times.append(trial(port))
        return times
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        log.close()


def run_supervisord(work: Path, trials: int) -> list[float]:
    """The same trials under supervisord with its own temporary config."""
    supervisord = shutil.which("supervisord")
    if supervisord is None:
        raise SystemExit("supervisord is not installed (apt-get install -y supervisor)")
    port = free_port()
    config = work / "supervisord.conf"
    config.write_text(
        "[supervisord]\n"
        f"nodaemon=true\nlogfile={work / 'supervisord.log'}\n"
        f"pidfile={work / 'supervisord.pid'}\nchildlogdir={work}\n"
        "[program:worker]\n"
        f"command={sys.executable} {TINY_HTTP} {port}\n"
        "autorestart=true\nstartsecs=1\n"
        f"stdout_logfile={work / 'worker.out'}\nstderr_logfile={work / 'worker.err'}\n"
    )
    daemon = subprocess.Popen(
        [supervisord, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        times = []
        for _ in range(trials):
            wait_until(lambda: pid_behind(port), 20, "supervisord's service to answer")
            time.sleep(1.2)  # past startsecs, so supervisord counts it as RUNNING
            times.append(trial(port))
        return times
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)


def summary(name: str, times: list[float]) -> str:
    """One result line."""
    return (
        f"{name:<12} median {statistics.median(times):.3f} s   max {max(times):.3f} s   "
        f"({', '.join(f'{t:.3f}' for t in times)})"
    )


def main(argv: list[str] | None = None) -> None:
    """Run both and print median and max."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    opts = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="selfheal-bench-") as tmp:
        (Path(tmp) / "selfheal").mkdir()
        (Path(tmp) / "supervisord").mkdir()
        ours = run_selfheal(Path(tmp) / "selfheal", opts.trials)
        theirs = run_supervisord(Path(tmp) / "supervisord", opts.trials)
    print(f"SIGKILL to HTTP 200 from the new process, {opts.trials} trials each")
    print(summary("selfheal", ours))
    print(summary("supervisord", theirs))


if __name__ == "__main__":
    main()
