"""Patterns in a tenant's history: recurring incidents, co-failing services, fading fixes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from selfheal.learning.pattern_counts import load_insights
from selfheal.runtime.agent import Agent


class InsightPublic(BaseModel):
    """One pattern found in the history."""

    kind: str
    summary: str
    p_value: float = Field(description="Bonferroni-corrected")
    data: dict[str, Any]


class InsightsPublic(BaseModel):
    """Patterns over the last ``days`` days, strongest first in each list."""

    days: int
    top: list[InsightPublic]
    recurring: list[InsightPublic]
    co_failing: list[InsightPublic]
    fading_fixes: list[InsightPublic]


async def insights(agent: Agent, *, tenant_id: str, days: int) -> InsightsPublic:
    """Only findings that survive a multiple-testing correction."""
    found = await load_insights(agent.db, tenant_id=tenant_id, days=days)

    def public(items: list[Any]) -> list[InsightPublic]:
        return [
            InsightPublic(
                kind=f.kind, summary=f.summary, p_value=float(f"{f.p_value:.3g}"), data=f.data
            )
            for f in items
        ]

    everything = sorted((f for items in found.values() for f in items), key=lambda f: f.p_value)
    return InsightsPublic(
        days=days,
        top=public(everything[:10]),
        recurring=public(found["recurring"]),
        co_failing=public(found["co_failing"]),
        fading_fixes=public(found["fading_fixes"]),
    )
