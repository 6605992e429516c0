"""What a key may do, and the audit row of a change made with it."""

from __future__ import annotations

from typing import Any

from selfheal.auth import Principal, allows
from selfheal.errors import ForbiddenError, StorageError
from selfheal.logging import get_logger
from selfheal.runtime.agent import Agent
from selfheal.storage.repositories import audit as audit_repo

log = get_logger(__name__)


def require_scope(principal: Principal, needed: str) -> None:
    """403 (the same words on both APIs) when the key's scope does not allow ``needed``."""
    if not allows(principal.scope, needed):
        raise ForbiddenError(
            f"this needs a key with the {needed} scope; this key has {principal.scope} "
            "(create one with `selfheal keys create --scope` or POST /api/keys)"
        )


async def record_change(
    agent: Agent, *, principal: Principal, verb: str, target: str, detail: dict[str, Any]
) -> None:
    """One audit row for a change made with a key (actor = key name, detail.key_id)."""
    try:
        async with agent.db.session() as session:
            await audit_repo.audit(
                session=session,
                tenant_id=principal.tenant_id,
                actor=principal.key_name,
                verb=verb,
                target=target[:300],
                detail={"key_id": principal.key_id} | detail,
            )
    except StorageError as exc:
        # the change is made; losing its audit row is logged, not turned into an error
        log.warning("audit_write_failed", verb=verb, error=exc.message)
