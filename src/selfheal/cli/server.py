"""Running the app under uvicorn, and stopping with a non-zero code if the agent fails."""

from __future__ import annotations

import asyncio
import contextlib
import signal

import uvicorn

from selfheal.api.app import create_app
from selfheal.config import Settings
from selfheal.configfile import FileConfig
from selfheal.runtime.agent import Agent


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
