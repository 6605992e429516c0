"""Carrying out the agent's actions: verify the webhook, run the named handler once, answer.

Framework-neutral: the Flask, ASGI, FastAPI and WSGI routes hand the raw
headers and body to ``WebhookDispatcher`` and send back its ``WebhookResponse``.

- A request that fails the contract's checks (signature, 300 s window, service
  id, replay) is answered 401 and nothing runs.
- A handler runs at most once per ``action_id``: a second delivery of the same
  action gets the first answer again (or 409 while the first still runs).
- The handler's return value is the action's result (JSON, 200); its exception
  is a failed action (500 with the error), recorded on the agent's side.
- Every answer carries a short ``detail`` text and is signed with the service's
  secret (the contract's headers): the agent shows an answer's ``detail`` only
  when it can verify that the service wrote it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from self_healing_sdk._models import WebhookResponse
from self_healing_sdk.signing import ReplayGuard, SignatureError, verify

log = logging.getLogger("self_healing_sdk")

ActionHandler = Callable[[dict[str, Any], int], Any]
"""``handler(params, incident_id)``; returns a JSON-able result, or raises. May be async."""

IDEMPOTENCY_MEMORY = 1000


DETAIL_LIMIT = 200


def config_update_handler(apply: Callable[[str, Any], Any]) -> ActionHandler:
    """The ``config_update`` action: params ``{"key": str, "value": any JSON}``.

    ``apply(key, value)`` changes the setting; its return value is the result.
    Params of another shape fail the action (500) without calling ``apply``.
    """

    def handler(params: dict[str, Any], incident_id: int) -> Any:
        key = params.get("key")
        if not isinstance(key, str) or not key or "value" not in params:
            raise ValueError('config_update needs params {"key": "<name>", "value": <value>}')
        return apply(key, params["value"])

    return handler


def degrade_handler(degrade: Callable[[int], Any]) -> ActionHandler:
    """The ``degrade`` action: params ``{"level": int >= 0}`` (0 is full service).

    ``degrade(level)`` sheds optional work down to that level; its return value
    is the result. A missing or bad level fails the action without calling it.
    """

    def handler(params: dict[str, Any], incident_id: int) -> Any:
        level = params.get("level", 1)
        if isinstance(level, bool) or not isinstance(level, int) or level < 0:
            raise ValueError('degrade needs params {"level": <integer >= 0>}')
        return degrade(level)

    return handler


def _error(status: int, code: str, message: str, **extra: Any) -> WebhookResponse:
    body = {"ok": False, "error": {"code": code, "message": message}, "detail": message}
    return WebhookResponse(status, body | extra)


def _detail(result: Any) -> str:
    """A short text for the agent's timeline: the result itself, or its JSON."""
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return text[:DETAIL_LIMIT]


@dataclass(frozen=True, slots=True)
class _Call:
    """A verified delivery, ready to run."""

    action: str
    handler: ActionHandler
    params: dict[str, Any]
    incident_id: int
    action_id: int | None


class ActionRegistry:
    """Handlers by action name. Registering a name twice is an error."""

    def __init__(self) -> None:
        self._handlers: dict[str, ActionHandler] = {}

    def add(self, name: str, handler: ActionHandler) -> None:
        """Register ``handler`` for ``name``."""
        if not name:
            raise ValueError("an action needs a name")
        if name in self._handlers:
            raise ValueError(f"a handler for action {name!r} is already registered")
        self._handlers[name] = handler

    def get(self, name: str) -> ActionHandler | None:
        """The handler of an action, if any."""
        return self._handlers.get(name)

    def names(self) -> list[str]:
        """Every registered action name."""
        return sorted(self._handlers)


class WebhookDispatcher:
    """Verifies deliveries, deduplicates them by action id and runs their handlers."""

    def __init__(
        self,
        *,
        service_id: str,
        secret: str,
        registry: ActionRegistry,
        replay_guard: ReplayGuard | None = None,
        memory: int = IDEMPOTENCY_MEMORY,
    ) -> None:
        self._service_id = service_id
        self._secret = secret
        self._registry = registry
        self._replays = replay_guard or ReplayGuard(max_entries=10_000)
        self._memory = memory
        # action id -> the answer given (None while the handler runs)
        self._done: OrderedDict[int, WebhookResponse | None] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Check a delivery against the contract and return its JSON body.

        Raises ``SignatureError`` (wrong signature, stale timestamp, wrong service
        id, replay) or ``ValueError`` (not a JSON object).
        """
        verify(
            self._secret,
            headers,
            body,
            service_id=self._service_id,
            replay_guard=self._replays,
        )
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the body is not a JSON object")
        return data

    def handle(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        """Serve one delivery in this thread (WSGI, Flask). Async handlers run to the end."""
        return self._signed(self._handle(headers, body))

    async def handle_async(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        """Serve one delivery in an event loop (ASGI). Sync handlers run in a worker
        thread so a slow fix does not stall the service's loop."""
        return self._signed(await self._handle_async(headers, body))

    def _signed(self, response: WebhookResponse) -> WebhookResponse:
        return dataclasses.replace(response, signer=(self._secret, self._service_id))

    def _handle(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        prepared = self._prepare(headers, body)
        if isinstance(prepared, WebhookResponse):
            return prepared
        try:
            result = prepared.handler(prepared.params, prepared.incident_id)
            if inspect.isawaitable(result):
                result = _run_awaitable(result)
        except Exception as exc:
            return self._finish(prepared, exc=exc)
        return self._finish(prepared, result=result)

    async def _handle_async(self, headers: Mapping[str, str], body: bytes) -> WebhookResponse:
        prepared = self._prepare(headers, body)
        if isinstance(prepared, WebhookResponse):
            return prepared
        try:
            if inspect.iscoroutinefunction(prepared.handler):
                result = await prepared.handler(prepared.params, prepared.incident_id)
            else:
                result = await asyncio.to_thread(
                    prepared.handler, prepared.params, prepared.incident_id
                )
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            return self._finish(prepared, exc=exc)
        return self._finish(prepared, result=result)

    def _prepare(self, headers: Mapping[str, str], body: bytes) -> _Call | WebhookResponse:
        try:
            data = self.verify(headers, body)
        except SignatureError as exc:
            log.warning("self_healing_sdk: webhook rejected: %s", exc.reason)
            return _error(401, "signature_rejected", exc.reason)
        except ValueError:
            return _error(400, "bad_request", "the body is not a JSON object")
        action = data.get("action")
        params = data.get("params") or {}
        incident_id = data.get("incident_id")
        action_id = data.get("action_id")
        if not isinstance(action, str) or not isinstance(params, dict):
            return _error(400, "bad_request", "expected {action, incident_id, action_id, params}")
        if not isinstance(incident_id, int) or not isinstance(action_id, int | None):
            return _error(400, "bad_request", "incident_id and action_id must be integers")
        handler = self._registry.get(action)
        if handler is None:
            known = ", ".join(self._registry.names()) or "none"
            return _error(
                404, "unknown_action", f"no handler for action {action!r} (known: {known})"
            )
        if action_id is not None:
            with self._lock:
                if action_id in self._done:
                    previous = self._done[action_id]
                    if previous is None:
                        return _error(409, "in_progress", f"action {action_id} is still running")
                    return WebhookResponse(
                        previous.status, dict(previous.body) | {"duplicate": True}
                    )
                self._done[action_id] = None
                while len(self._done) > self._memory:
                    self._done.popitem(last=False)
        return _Call(action, handler, params, incident_id, action_id)

    def _finish(
        self, call: _Call, *, result: Any = None, exc: Exception | None = None
    ) -> WebhookResponse:
        head = {"action": call.action, "action_id": call.action_id, "incident_id": call.incident_id}
        if exc is not None:
            log.exception("self_healing_sdk: action %s failed", call.action, exc_info=exc)
            message = f"{type(exc).__name__}: {exc}"[:2000]
            error = {"code": "action_failed", "message": message}
            response = WebhookResponse(
                500, {"ok": False, **head, "error": error, "detail": message[:DETAIL_LIMIT]}
            )
        else:
            value = _jsonable(result)
            answer = {"ok": True, **head, "result": value}
            response = WebhookResponse(
                200, answer if value is None else answer | {"detail": _detail(value)}
            )
        if call.action_id is not None:
            with self._lock:
                self._done[call.action_id] = response
        return response


def _jsonable(value: Any) -> Any:
    """The value if JSON can carry it, else its string form."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _run_awaitable(awaitable: Awaitable[Any]) -> Any:
    """Run an async handler to the end from synchronous code (a WSGI or Flask route)."""

    async def wrapper() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wrapper())
    # this thread already runs a loop (it cannot be re-entered): use a fresh thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, wrapper()).result()
