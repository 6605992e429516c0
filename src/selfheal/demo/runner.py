"""``selfheal demo``: start a fleet of breakable services and an agent, tell the story.

Everything runs on loopback with a throwaway SQLite database. The terminal
shows each step as it happens (detected, decided, acted, verified) with times
since the demo started; the dashboard and API are at the printed address.
With ``--duration`` it ends by itself and exits 0 only if every fault was
detected and healed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from selfheal.config import load_settings
from selfheal.configfile import FileConfig, parse_config
from selfheal.demo import processes
from selfheal.events import Event
from selfheal.events import bus as ev
from selfheal.logging import configure_logging
from selfheal.runtime.agent import Agent


@dataclass(frozen=True)
class DemoFault:
    """One demo service and how it will break."""

    name: str
    fault: str
    after: float
    story: str
    restart_by_command: bool = False
    supervised: bool = False  # started by the agent, which restarts it when it exits


FLEET = (
    DemoFault("cart", "memory", 4.0, "leaks memory; clear_cache frees it"),
    DemoFault("payments", "errors", 7.0, "starts failing 60% of requests; rollback ends it"),
    DemoFault("search", "latency", 10.0, "gets slow; clear_cache won't help, scale will"),
    DemoFault(
        "checkout", "crash", 13.0, "crashes; its parent, the agent, restarts it", supervised=True
    ),
    DemoFault("inventory", "hang", 16.0, "hangs; restarted by a local command", True),
)


@dataclass
class Progress:
    """What happened to each service's fault, for the final verdict."""

    detected: dict[str, float] = field(default_factory=dict)
    healed: dict[str, float] = field(default_factory=dict)
    escalated: set[str] = field(default_factory=set)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _config(state: Path, ports: dict[str, int], secret: str) -> FileConfig:
    services: list[dict[str, Any]] = []
    for item in FLEET:
        service: dict[str, Any] = {
            "id": item.name,
            "name": item.name.title(),
            "health_url": f"http://127.0.0.1:{ports[item.name]}/health",
            "webhook_url": f"http://127.0.0.1:{ports[item.name]}/webhook",
            "secret": secret,
            "tags": ["demo", item.fault],
            "cooldown": 20,
        }
        if item.supervised:
            service["process"] = {
                "command": [
                    sys.executable,
                    "-m",
                    "selfheal.demo.service",
                    "--name",
                    item.name,
                    "--port",
                    str(ports[item.name]),
                    "--fault",
                    item.fault,
                    "--after",
                    str(item.after),
                    "--once",
                    str(state / f"{item.name}.faulted"),
                ],
                "env": {"SELFHEAL_DEMO_SECRET": secret},
                "stop_timeout": 2,
            }
        if item.restart_by_command:
            service["remediation"] = {
                "restart": {
                    "exec": [
                        sys.executable,
                        "-m",
                        "selfheal.demo.processes",
                        "restart",
                        str(state),
                        item.name,
                    ],
                    "timeout": 10,
                }
            }
        services.append(service)
    return parse_config(json.dumps({"services": services}), source="<demo>")


def run_demo(*, duration: float | None, host: str, port: int) -> int:
    """Run the demo; returns the process exit code."""
    state = Path(tempfile.mkdtemp(prefix="selfheal-demo-"))
    try:
        return asyncio.run(_demo(state, duration=duration, host=host, port=port))
    except KeyboardInterrupt:
        return 130
    finally:
        processes.stop_all(state)
        shutil.rmtree(state, ignore_errors=True)


async def _demo(state: Path, *, duration: float | None, host: str, port: int) -> int:
    secret = secrets.token_urlsafe(16)
    api_key = "demo_" + secrets.token_urlsafe(12)
    ports = {item.name: _free_port() for item in FLEET}
    for item in FLEET:
        processes.spec_path(state, item.name).write_text(
            json.dumps({"port": ports[item.name], "secret": secret})
        )
    settings = load_settings(
        DATABASE_URL=f"sqlite+aiosqlite:///{state / 'demo.db'}",
        DATA_DIR=state,
        SECRET_KEY=secrets.token_urlsafe(32),
        API_KEYS=[SecretStr(api_key)],
        HOST=host,
        PORT=port,
        CHECK_INTERVAL=2,
        CHECK_TIMEOUT=1.5,
        MAX_RETRIES=2,
        RETRY_DELAY=1,
        VERIFY_INTERVAL=0.5,
        VERIFY_TIMEOUT=6,
        LOG_LEVEL="ERROR",
        LOG_FORMAT="console",
    )
    # the story below is the demo's output; agent logs would only repeat it
    configure_logging(level="ERROR", fmt="console")
    agent = Agent(settings, file_config=_config(state, ports, secret))
    t0 = time.monotonic()
    progress = Progress()
    agent.bus.add_listener(lambda event: _tell(event, t0, progress))

    for item in FLEET:
        if not item.supervised:  # the agent starts its supervised ones itself
            processes.start(state, item.name, fault=item.fault, after=item.after)
    for item in FLEET:
        if not item.supervised:
            processes.wait_listening(ports[item.name], 5.0)

    url = f"http://{host}:{port}"
    _banner(url, api_key, duration)
    from selfheal.cli.server import run_server

    server = asyncio.create_task(run_server(settings, FileConfig(), agent=agent))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({stopper, server}, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    agent.stop_requested.set()  # ends the server task
    await asyncio.gather(server, return_exceptions=True)
    return _verdict(progress, t0, finished=duration is not None)


def _banner(url: str, api_key: str, duration: float | None) -> None:
    click.secho("\nselfheal demo", bold=True)
    click.echo(f"  agent and API  {url}   (OpenAPI docs: {url}/docs)")
    click.echo(f"  dashboard      {url}/dashboard")
    click.echo(
        f"  API key        {api_key}   e.g. curl -H 'X-API-Key: {api_key}' {url}/api/incidents"
    )
    click.echo(f"  metrics        {url}/metrics")
    click.echo("\n  The fleet, and how each service will break:")
    for item in FLEET:
        click.echo(f"    {item.name:<10} at {item.after:>4.0f}s  {item.story}")
    ending = f"the demo ends after {duration:g}s" if duration else "Ctrl-C stops everything"
    click.echo(f"\n  Watch the agent detect, decide, act and verify ({ending}).\n")


_COLOURS = {
    "DOWN": "red",
    "DEGRADED": "yellow",
    "UP": "green",
    "DETECTED": "red",
    "DECIDED": "cyan",
    "ACTING": "blue",
    "ACTED": "blue",
    "VERIFIED": "green",
    "NOT FIXED": "yellow",
    "RESOLVED": "green",
    "ESCALATED": "magenta",
}


def _line(t0: float, service: str, label: str, text: str) -> None:
    stamp = f"[{time.monotonic() - t0:6.1f}s]"
    click.echo(f"{stamp} {service:<10} {click.style(f'{label:<9}', fg=_COLOURS.get(label))} {text}")


def _tell(event: Event, t0: float, progress: Progress) -> None:
    data = event.data
    service = str(data.get("service_id", ""))
    if event.type == ev.SERVICE_STATUS and data["previous"] != "unknown":
        _line(t0, service, data["status"].upper(), data["reason"])
    elif event.type == ev.INCIDENT_OPENED:
        progress.detected.setdefault(service, time.monotonic() - t0)
        _line(
            t0, service, "DETECTED", f"incident #{data['id']} {data['type']} ({data['severity']})"
        )
    elif event.type == ev.DECISION_MADE:
        _line(t0, service, "DECIDED", str(data["reason"]))
    elif event.type == ev.ACTION_STARTED:
        _line(t0, service, "ACTING", f"{data['action']} via {data['executor']}")
    elif event.type == ev.ACTION_FINISHED:
        _line(t0, service, "ACTED", f"{data['action']}: {data['status']} ({data['detail']})")
    elif event.type == ev.VERIFICATION_FINISHED:
        label = "VERIFIED" if data["outcome"] == "recovered" else "NOT FIXED"
        _line(t0, service, label, f"{data['action']}: {data['outcome']} after {data['seconds']}s")
    elif event.type == ev.INCIDENT_RESOLVED:
        progress.healed[service] = time.monotonic() - t0
        _line(t0, service, "RESOLVED", f"incident #{data['id']}: {data.get('resolution')}")
    elif event.type == ev.INCIDENT_ESCALATED:
        progress.escalated.add(service)
        _line(t0, service, "ESCALATED", str(data.get("message", "")))


def _verdict(progress: Progress, t0: float, *, finished: bool) -> int:
    click.echo("")
    all_healed = True
    for item in FLEET:
        detected = progress.detected.get(item.name)
        healed = progress.healed.get(item.name)
        if detected is not None and healed is not None:
            click.echo(
                f"  {item.name:<10} {item.fault:<8} detected at {detected:5.1f}s, "
                f"healed at {healed:5.1f}s ({healed - detected:4.1f}s to heal)"
            )
        else:
            all_healed = False
            what = "not detected" if detected is None else "not healed"
            click.echo(f"  {item.name:<10} {item.fault:<8} {what}")
    if not finished:
        return 0
    if all_healed:
        click.secho(
            f"\nEvery fault was detected and healed ({time.monotonic() - t0:.0f}s).", fg="green"
        )
        return 0
    click.secho("\nNot every fault was healed in time; see above.", fg="red")
    return 1
