"""``SelfHealingAgent``: the SDK for threaded hosts (Flask, Django, plain WSGI, scripts).

A daemon thread sends the heartbeats and the queued error events; the host's
threads only queue. Every call has a timeout, retries are bounded with
exponential backoff, and nothing raises into the host because the agent is
down or slow: the loop keeps trying once per heartbeat interval and picks up
again (re-registering if the agent forgot the service) when it is back.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx

from self_healing_sdk._core import AgentCore
from self_healing_sdk._delivery import Outcome, Push, backoff, classify, limit
from self_healing_sdk._models import HealthStatus, RegisterResult

log = logging.getLogger("self_healing_sdk")

SHUTDOWN_SECONDS = 2.0


class SelfHealingAgent(AgentCore):
    """Joins a service to the selfheal agent, reports its health and carries out fixes.

    ::

        agent = SelfHealingAgent(agent_url="http://localhost:5000", user_id="team-a",
                                 service_id="payment-api", secret="s3cret")
        agent.register(name="Payment API", health_url="http://127.0.0.1:6000/health",
                       webhook_url="http://127.0.0.1:6000/webhook")
        agent.set_health_callback(lambda status: print(status))
        agent.start_monitoring()

    ``api_key`` defaults to the ``SELFHEAL_API_KEY`` environment variable; it picks
    the tenant. ``transport`` replaces the network (an ``httpx`` transport), e.g.
    ``httpx.MockTransport`` or ``httpx.WSGITransport`` in tests.
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
        transport: httpx.BaseTransport | None = None,
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
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._wakeup = threading.Event()

    # -- public -------------------------------------------------------------------------

    def register(
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

        Tries up to ``max_retries`` times; if the agent cannot be reached, the
        monitoring loop keeps trying in the background. Never raises for the agent.
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
        return self._register(self.max_retries)

    def start_monitoring(self) -> None:
        """Start the background thread: heartbeats every ``heartbeat_interval`` seconds,
        queued errors as soon as possible, the health callback after each heartbeat."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"selfheal-sdk:{self.service_id}", daemon=True
            )
            self._thread.start()
            _running.add(self)

    def stop_monitoring(self, timeout: float = SHUTDOWN_SECONDS) -> None:
        """Stop the thread, try once to send the errors still queued, then tell the agent
        that heartbeats stop on purpose (all bounded by ``timeout``)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wakeup.set()
        thread.join(timeout)
        _running.discard(self)
        if len(self._outbox) and self._reachable:
            self._flush(attempts=1, deadline=deadline)
        left = deadline - time.monotonic()
        if self._registered and self._reachable and left > 0:
            self._deliver(self._stop_push(), 1, left)

    @property
    def monitoring(self) -> bool:
        """True while the background thread runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def close(self) -> None:
        """Stop monitoring and close the HTTP connections."""
        self.stop_monitoring()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> SelfHealingAgent:
        self.start_monitoring()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the loop -----------------------------------------------------------------------

    def _wake(self) -> None:
        self._wakeup.set()

    def _run(self) -> None:
        next_beat = time.monotonic()
        while not self._stopping.is_set():
            self._wakeup.clear()
            try:
                if time.monotonic() >= next_beat:
                    self._beat()
                    next_beat += self.heartbeat_interval
                    if next_beat < time.monotonic():  # fell behind: skip, do not burst
                        next_beat = time.monotonic() + self.heartbeat_interval
                if self._reachable and len(self._outbox):
                    self._flush(attempts=self.max_retries)
            except Exception:  # a bug here must not end the heartbeats for good
                log.exception("self_healing_sdk: monitoring loop error")
            self._wakeup.wait(max(0.0, next_beat - time.monotonic()))

    def _beat(self) -> None:
        if not self._registered and self._registration is not None:
            self._register(1)
        push, figures = self._heartbeat_push()
        outcome = self._deliver(push, self.max_retries if self._reachable else 1)
        if outcome is Outcome.REREGISTER and self._register(1).ok:
            self._deliver(push, 1)
        self._notify(self._status_of(figures))

    def _register(self, attempts: int) -> RegisterResult:
        push = self._registration_push()
        if push is None:
            return RegisterResult(False, error="register() was never called")
        outcome, status_code, data = self._send(push, attempts)
        if outcome is Outcome.OK:
            created = data.get("created") if isinstance(data, dict) else None
            return RegisterResult(True, created=bool(created), status_code=status_code)
        return RegisterResult(False, status_code=status_code, error=self._last_failure)

    def _flush(self, *, attempts: int, deadline: float | None = None) -> None:
        pending = self._error_pushes(self._outbox.take())
        for index, (push, _members) in enumerate(pending):
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                outcome = Outcome.RETRY  # out of time (shutting down): keep them queued
            else:
                outcome = self._deliver(push, attempts, left)
            if outcome in (Outcome.RETRY, Outcome.REREGISTER):
                self._outbox.requeue([m for _p, ms in pending[index:] for m in ms])
                return

    def _notify(self, status: HealthStatus) -> None:
        callback = self._health_callback
        if callback is None:
            return
        try:
            callback(status)
            self._callback_failed = False
        except Exception:
            self._callback_failed_once()

    # -- sending ------------------------------------------------------------------------

    def _deliver(self, push: Push, attempts: int, timeout: float | None = None) -> Outcome:
        return (self._send(push, attempts, timeout))[0]

    def _send(
        self, push: Push, attempts: int, timeout: float | None = None
    ) -> tuple[Outcome, int | None, Any]:
        """Up to ``attempts`` tries with backoff; each one re-signed, under the timeout."""
        client = self._http()
        for attempt in range(attempts):
            if attempt and self._pause(backoff(attempt, self.heartbeat_interval / 2)):
                break
            body, headers = self._encode(push)
            try:
                response = client.post(
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

    def _pause(self, seconds: float) -> bool:
        """Wait between tries; True if monitoring is stopping (the loop thread gives up)."""
        if threading.current_thread() is self._thread:
            return self._stopping.wait(seconds)
        time.sleep(seconds)
        return False

    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    base_url=self.agent_url, timeout=self.timeout, transport=self._transport
                )
            return self._client


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


# agents still monitoring when the interpreter exits get a short, clean stop
_running: weakref.WeakSet[SelfHealingAgent] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for agent in list(_running):
        with contextlib.suppress(Exception):  # the interpreter is going away
            agent.stop_monitoring(timeout=1.0)
