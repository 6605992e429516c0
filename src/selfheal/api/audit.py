"""Every change made through the API is in the audit log with the key's id.

Written here, once, for every route (a new route is covered without a mark): after
a changing request (not GET/HEAD/OPTIONS) answered below 400 by a key.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from selfheal.auth import Principal
from selfheal.errors import StorageError
from selfheal.logging import get_logger
from selfheal.storage.repositories import audit as audit_repo

log = get_logger(__name__)

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditMiddleware:
    """One audit row per successful change: actor = key name, detail.key_id = key id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _SAFE_METHODS:
            await self.app(scope, receive, send)
            return
        status = 0

        async def watched_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watched_send)
        principal = scope.get("state", {}).get("principal")
        if isinstance(principal, Principal) and 0 < status < 400:
            await _write(scope, principal, status)


async def _write(scope: Scope, principal: Principal, status: int) -> None:
    route: Any = scope.get("route")
    template = getattr(route, "path", None) or scope["path"]
    try:
        async with scope["app"].state.agent.db.session() as session:
            await audit_repo.audit(
                session=session,
                tenant_id=principal.tenant_id,
                actor=principal.key_name,
                verb=f"api.{scope['method'].lower()}",
                target=scope["path"][:300],
                detail={"key_id": principal.key_id, "route": template, "status": status},
            )
    except StorageError as exc:
        # the change is made; losing its audit row is logged, not turned into an error
        log.warning("audit_write_failed", path=scope["path"], error=exc.message)
