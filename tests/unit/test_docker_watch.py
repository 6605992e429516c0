"""The events watch across a lost stream: followed again from where it was, no repeats.

dockerd itself is shared on the test machine and is not restarted by tests, so
the stream's loss comes from a fake client with the real client's ``events``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from selfheal.contrib.docker.client import DockerClient, DockerError
from selfheal.contrib.docker.watch import DockerWatch


def _die(name: str, at: float, code: int = 137) -> dict[str, Any]:
    return {
        "Type": "container",
        "Action": "die",
        "Actor": {"Attributes": {"name": name, "exitCode": str(code)}},
        "timeNano": int(at * 1e9),
    }


class _LosingClient(DockerClient):
    """First stream: one death, then lost. Second: a replay of it, then a new one."""

    def __init__(self) -> None:
        super().__init__("unix:///nonexistent.sock")
        self.asked_since: list[float | None] = []
        self.done = asyncio.Event()

    async def events(
        self,
        filters: Mapping[str, list[str]],
        *,
        since: float | None = None,
        opened: asyncio.Event | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        self.asked_since.append(since)
        if opened is not None:
            opened.set()
        if len(self.asked_since) == 1:
            yield _die("web", 1000.0)
            yield _die("other", 1001.0)
            raise DockerError("Docker events stream lost: reset")
        yield _die("web", 1000.0)  # replayed: already handled
        yield _die("other", 1001.0)
        yield _die("web", 1002.0, code=1)  # died while the stream was down
        self.done.set()
        await asyncio.Event().wait()


async def test_lost_stream_is_followed_again_without_repeats() -> None:
    client = _LosingClient()
    died: list[str] = []
    watch = DockerWatch(client, watched=lambda: {"web"}, on_die=lambda _n, what: died.append(what))
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(client.done.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert died == ["container web died (exit code 137)", "container web died (exit code 1)"]
    assert client.asked_since[0] is None
    assert client.asked_since[1] is not None
    assert client.asked_since[1] >= 1001.0  # from the last event it saw, not from scratch


async def test_own_restart_window_hides_a_death() -> None:
    client = _LosingClient()
    died: list[str] = []
    watch = DockerWatch(client, watched=lambda: {"web"}, on_die=lambda _n, what: died.append(what))
    watch.expect("web", 60)
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(client.done.wait(), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert died == []
