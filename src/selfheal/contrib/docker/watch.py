"""Following dockerd's events: a container that dies opens an incident at once.

One ``GET /events`` stream, filtered to container ``die`` events. A death the
agent did not cause itself (its own restart or stop is expected for a while)
is reported through ``on_die``; the runtime turns it into a conclusive failed
sample, as for a supervised process. A lost stream is followed again after a
growing pause (capped), from where it was lost: dockerd replays the deaths
in between (``since``), so none is missed while the stream was down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from selfheal.contrib.docker.client import DockerClient, DockerError
from selfheal.logging import get_logger

log = get_logger(__name__)

OnDie = Callable[[str, str], None]  # (container name, what happened)
RECONNECT_MAX = 30.0


class DockerWatch:
    """Reports the deaths of containers the agent looks after."""

    def __init__(
        self, client: DockerClient, *, watched: Callable[[], set[str]], on_die: OnDie
    ) -> None:
        self._client = client
        self._watched = watched
        self._on_die = on_die
        self._expected: dict[str, float] = {}
        self.connected = asyncio.Event()  # set while the stream is open (tests wait on it)

    def expect(self, name: str, seconds: float) -> None:
        """The agent itself is about to stop or restart this container: not news."""
        self._expected[name] = time.monotonic() + seconds

    async def run(self) -> None:
        """Follow the events stream until cancelled."""
        delay = 0.5
        since: float | None = None  # the first stream: only what happens from now on
        handled = 0.0  # time of the last event handled: a replay must not repeat it
        while True:
            asked_at = time.time()
            try:
                stream = self._client.events(
                    {"type": ["container"], "event": ["die"]}, since=since, opened=self.connected
                )
                async for event in stream:
                    delay = 0.5
                    at = _event_time(event)
                    if at and at <= handled:
                        continue
                    handled = max(handled, at)
                    self._handle(event)
                raise DockerError("Docker closed the events stream")
            except (DockerError, ValueError) as exc:  # ValueError: an undecodable event
                if self.connected.is_set():
                    # it was open: everything since it was asked for (or the last event) was seen
                    since = max(since or asked_at, handled)
                self.connected.clear()
                log.warning("docker_events_lost", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)

    def _handle(self, event: dict[str, object]) -> None:
        actor = event.get("Actor")
        attributes = actor.get("Attributes", {}) if isinstance(actor, dict) else {}
        name = str(attributes.get("name", ""))
        if name not in self._watched():
            return
        if self._expected.get(name, 0.0) > time.monotonic():
            return
        code = attributes.get("exitCode", "?")
        log.warning("container_died", container=name, exit_code=code)
        self._on_die(name, f"container {name} died (exit code {code})")


def _event_time(event: dict[str, object]) -> float:
    """When dockerd says it happened (``timeNano``), in unix seconds; 0 if it does not say."""
    nano = event.get("timeNano")
    return float(nano) / 1e9 if isinstance(nano, int | float) else 0.0
