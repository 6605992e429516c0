"""``AsyncSelfHealingAgent``: the SDK for asyncio hosts (FastAPI, Starlette, aiohttp).

The same protocol as ``SelfHealingAgent``, sent from a task in the host's
event loop with ``httpx.AsyncClient``. The health callback and the action
handlers may be coroutines. Use ``async with agent:`` (or the app's lifespan)
so the task stops with the loop; there is no interpreter-exit hook for it
because the loop is gone by then.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from self_healing_sdk._agent import SHUTDOWN_SECONDS, _json
from self_healing_sdk._core import AgentCore
from self_healing_sdk._delivery import Outcome, Push, backoff, classify, limit
from self_healing_sdk._models import HealthStatus, RegisterResult

log = logging.getLogger("self_healing_sdk")


class AsyncSelfHealingAgent(AgentCore):
    """The asyncio twin of ``SelfHealingAgent``: same arguments, awaitable calls.

    ::

        agent = AsyncSelfHealingAgent(agent_url="http://localhost:5000", user_id="team-a",
                                      service_id="payment-api", secret="s3cret")
        await agent.register(name="Payment API", health_url=..., webhook_url=...)
        async with agent:  # start_monitoring() ... stop_monitoring()
            ...
    """

    def __init__(
        self,
        agent_url: str,
        user_id: str,
        service_id: str,
        secret: str,
        *,
        api_key: str | None = None,
        heartbeat_interval: float = 10.0,
        timeout: float = 5.0,
        max_retries: int = 3,
        queue_size: int = 1000,
        api_key_header: str = "X-API-Key",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            agent_url,
            user_id,
            service_id,
            secret,
            api_key=api_key,
            heartbeat_interval=heartbeat_interval,
            timeout=timeout,
            max_retries=max_retries,
            queue_size=queue_size,
            api_key_header=api_key_header,
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._stopping = False

    # -- public -------------------------------------------------------------------------

    async def register(
        self,
        name: str | None,
        health_url: str,
        webhook_url: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        interval: float | None = None,
        heartbeat_timeout: float | None = None,
        thresholds: Mapping[str, float] | None = None,
    ) -> RegisterResult:
        """Create or update the service on the agent (an upsert on ``service_id``).

        Tries up to ``max_retries`` times; the monitoring task keeps trying after
        that. Never raises for the agent.
        """
        self._registration_payload(
            name=name,
            health_url=health_url,
            webhook_url=webhook_url,
            tags=tags,
            metadata=metadata,
            interval=interval,
            heartbeat_timeout=heartbeat_timeout,
            thresholds=thresholds,
        )
        return await self._register(self.max_retries)

    async def start_monitoring(self) -> None:
        """Start the monitoring task in the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"selfheal-sdk:{self.service_id}")

    async def stop_monitoring(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Stop the task, try once to send the errors still queued, then tell the agent
        that heartbeats stop on purpose (all bounded by ``timeout``)."""
        task, self._task = self._task, None
        if task is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if len(self._outbox) and self._reachable:
            await self._flush(attempts=1, deadline=deadline)
        left = deadline - time.monotonic()
        if self._registered and self._reachable and left > 0:
            await self._deliver(self._stop_push(), 1, left)

    @property
    def monitoring(self) -> bool:
        """True while the monitoring task runs."""
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop monitoring and close the HTTP connections."""
        await self.stop_monitoring()
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> AsyncSelfHealingAgent:
        await self.start_monitoring()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the loop -----------------------------------------------------------------------

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:  # report_error() from another thread
            loop.call_soon_threadsafe(wakeup.set)

    async def _run(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while not self._stopping:
            self._wakeup.clear()
            try:
                if loop.time() >= next_beat:
                    await self._beat()
                    next_beat += self.heartbeat_interval
                    if next_beat < loop.time():
                        next_beat = loop.time() + self.heartbeat_interval
                if self._reachable and len(self._outbox):
                    await self._flush(attempts=self.max_retries)
            except Exception:  # a bug here must not end the heartbeats for good
                log.exception("self_healing_sdk: monitoring loop error")
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, next_beat - loop.time()))

    async def _beat(self) -> None:
        if not self._registered and self._registration is not None:
            await self._register(1)
        push, figures = self._heartbeat_push()
        outcome = await self._deliver(push, self.max_retries if self._reachable else 1)
        if outcome is Outcome.REREGISTER and (await self._register(1)).ok:
            await self._deliver(push, 1)
        await self._notify(self._status_of(figures))

    async def _register(self, attempts: int) -> RegisterResult:
        push = self._registration_push()
        if push is None:
            return RegisterResult(False, error="register() was never called")
        outcome, status_code, data = await self._send(push, attempts)
        if outcome is Outcome.OK:
            created = data.get("created") if isinstance(data, dict) else None
            return RegisterResult(True, created=bool(created), status_code=status_code)
        return RegisterResult(False, status_code=status_code, error=self._last_failure)

    async def _flush(self, *, attempts: int, deadline: float | None = None) -> None:
        pending = self._error_pushes(self._outbox.take())
        for index, (push, _members) in enumerate(pending):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                outcome = Outcome.RETRY  # out of time (shutting down): keep them queued
            else:
                outcome = await self._deliver(push, attempts, left)
            if outcome in (Outcome.RETRY, Outcome.REREGISTER):
                self._outbox.requeue([m for _p, ms in pending[index:] for m in ms])
                return

    async def _notify(self, status: HealthStatus) -> None:
        callback = self._health_callback
        if callback is None:
            return
        try:
            result = callback(status)
            if inspect.isawaitable(result):
                await result
            self._callback_failed = False
        except Exception:
            self._callback_failed_once()

    # -- sending ------------------------------------------------------------------------

    async def _deliver(self, push: Push, attempts: int, timeout: float | None = None) -> Outcome:
        return (await self._send(push, attempts, timeout))[0]

    async def _send(
        self, push: Push, attempts: int, timeout: float | None = None
    ) -> tuple[Outcome, int | None, Any]:
        client = self._http()
        for attempt in range(attempts):
            if attempt:
                if self._stopping:
                    break
                await asyncio.sleep(backoff(attempt, self.heartbeat_interval / 2))
            body, headers = self._encode(push)
            try:
                response = await client.post(
                    push.path, content=body, headers=headers, timeout=limit(self.timeout, timeout)
                )
            except httpx.HTTPError as exc:
                self._unanswered(push, f"{type(exc).__name__}: {exc}")
                continue
            except Exception as exc:  # an invalid URL, a broken transport: never raise
                self._unanswered(push, f"{type(exc).__name__}: {exc}")
                return Outcome.REJECTED, None, None
            data = _json(response)
            outcome = classify(response.status_code, data)
            self._answered(push, outcome, response.status_code, data)
            if outcome is not Outcome.RETRY:
                return outcome, response.status_code, data
        return Outcome.RETRY, None, None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.agent_url, timeout=self.timeout, transport=self._transport
            )
        return self._client
