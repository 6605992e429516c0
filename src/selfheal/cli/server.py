"""Running the app under uvicorn, and stopping with a non-zero code if the agent fails.

Before anything is printed, ``check_port`` and ``check_database`` turn the two
usual start-up mistakes into one line each (``ConfigError``) instead of a
"listening" banner followed by a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket

import uvicorn
from sqlalchemy.engine import make_url

from selfheal.api.app import create_app
from selfheal.config import Settings
from selfheal.configfile import FileConfig
from selfheal.errors import ConfigError, StorageError
from selfheal.runtime.agent import Agent
from selfheal.storage.db import Database, db_timeouts


def check_port(host: str, port: int) -> None:
    """``ConfigError`` unless ``host:port`` can be listened on right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as uvicorn binds: a port left in TIME_WAIT by a previous run is free
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} is in use, try --port") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def check_database(settings: Settings) -> None:
    """``ConfigError`` naming the problem unless the database can be reached and migrated."""
    where = make_url(settings.DATABASE_URL).render_as_string(hide_password=True)
    try:
        db = Database(settings.DATABASE_URL, timeouts=db_timeouts(settings))
    except StorageError as exc:
        raise ConfigError(f"DATABASE_URL: {exc.message}") from None
    try:
        await db.migrate()
    except Exception as exc:
        raise ConfigError(f"cannot use the database {where}: {_reason(exc)}") from None
    finally:
        await db.close()


def _reason(exc: BaseException) -> str:
    """One line for why a database could not be used, from the innermost cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "Connect call failed" in str(seen):
            return "connection refused (is the server running, on that host and port?)"
        if isinstance(seen, TimeoutError):
            return "no answer in time (is the host right, and reachable?)"
        if type(seen).__module__.startswith("asyncpg"):
            return str(seen).splitlines()[0] if str(seen) else type(seen).__name__
        seen = seen.__cause__ or getattr(seen, "orig", None)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def run_server(
    settings: Settings, file_config: FileConfig, *, agent: Agent | None = None
) -> int:
    """Serve until a signal (0) or until a core loop of the agent dies (1)."""
    the_agent = agent or Agent(settings, file_config=file_config)
    app = create_app(settings, agent=the_agent)
    config = uvicorn.Config(
        app,
        host=settings.HOST,
        port=settings.PORT,
        log_config=None,  # our logging setup handles uvicorn's loggers too
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        ws_ping_interval=20,
    )
    server = uvicorn.Server(config)
    # our handlers, not uvicorn's: uvicorn re-raises the signal after shutdown, which
    # would turn a clean stop into "killed by SIGTERM"
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl-C: stop waiting for connections
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    await the_agent.start()

    async def watch() -> None:
        await the_agent.stop_requested.wait()
        server.should_exit = True

    watcher = asyncio.create_task(watch())
    try:
        await server.serve()
    finally:
        watcher.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await the_agent.stop()
    if the_agent.failed is not None:
        return 1
    return 0 if server.started else 3
