"""Action runs: every fix, newest first."""

from __future__ import annotations

from selfheal.api.schemas import ActionPublic
from selfheal.api.views import action_public
from selfheal.application.paging import Page, page_of
from selfheal.runtime.agent import Agent
from selfheal.storage.repositories import actions as repo


async def list_actions(
    agent: Agent, *, tenant_id: str, service_id: str | None, limit: int, before: int | None
) -> Page[ActionPublic]:
    """The tenant's action runs, newest first, of one service or all."""
    async with agent.db.session() as session:
        rows = await repo.list_actions(
            session=session,
            tenant_id=tenant_id,
            service_id=service_id,
            limit=limit,
            before_id=before,
        )
    return page_of([action_public(r) for r in rows], [r.id for r in rows], limit)
