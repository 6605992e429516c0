"""What learning knows: baselines and suggested thresholds, fix evidence, insights."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from selfheal.api.deps import AgentDep, PrincipalDep, ServiceIdPath
from selfheal.api.errors import documented
from selfheal.errors import NotFoundError
from selfheal.learning.outcomes import load_state, reset_service
from selfheal.learning.pattern_counts import load_insights
from selfheal.services import ServiceSpec
from selfheal.storage.repositories import audit as audit_repo
from selfheal.storage.repositories import learning as learning_repo
from selfheal.storage.repositories.learning import FLEET
from selfheal.types import ServiceKey

router = APIRouter(tags=["learning"])


class BaselinePublic(BaseModel):
    """A service's learned baselines and the thresholds they suggest."""

    service_id: str
    period_seconds: float = Field(description="one baseline value per this many seconds")
    learning_samples: int = Field(description="values a baseline learns before it may alert")
    anomalous: list[str] = Field(description="metrics unusual right now")
    metrics: dict[str, dict[str, Any]] = Field(
        description="per metric: samples, typical level, learned range, last score, alerts"
    )
    thresholds: dict[str, dict[str, Any]] = Field(
        description="per threshold: current value, suggestion (or null) and its basis"
    )
    auto_apply: bool = Field(description="whether suggestions are applied by themselves")


class LearnedFixPublic(BaseModel):
    """The evidence about one fix for one incident type."""

    incident_type: str
    action: str
    mean: float = Field(description="posterior mean success, from this level's evidence alone")
    successes: float = Field(description="discounted")
    failures: float = Field(description="discounted")
    runs: int
    recovered: int
    mean_recovery_seconds: float | None
    recovery_seconds_std: float | None
    recent: str = Field(description="latest outcomes, oldest first: 1 recovered, 0 not")
    changes_detected: int


class LearningPublic(BaseModel):
    """What was learned about a service's fixes, next to the fleet's."""

    service_id: str
    service: list[LearnedFixPublic]
    fleet: list[LearnedFixPublic]


class LearningReset(BaseModel):
    """What a reset forgot."""

    service_id: str
    fixes_forgotten: int
    baselines_forgotten: int


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


def _spec(agent: AgentDep, tenant_id: str, service_id: str) -> ServiceSpec:
    spec = agent.fleet.spec(ServiceKey(tenant_id, service_id))
    if spec is None:
        raise NotFoundError(f"no service {service_id!r}")
    return spec


@router.get(
    "/api/services/{service_id}/baseline",
    response_model=BaselinePublic,
    summary="Learned baselines and suggested thresholds of a service",
    responses=documented(404),
)
async def get_baseline(
    service_id: ServiceIdPath, agent: AgentDep, principal: PrincipalDep
) -> BaselinePublic:
    """Per metric what the streaming detector learned; per threshold a suggestion from the
    service's own history (applied only when ``AUTO_THRESHOLDS`` is on)."""
    spec = _spec(agent, principal.tenant_id, service_id)
    tracker = agent.baselines
    return BaselinePublic(
        service_id=service_id,
        period_seconds=tracker.period if tracker else agent.settings.ANOMALY_PERIOD,
        learning_samples=tracker.learning_samples if tracker else 0,
        anomalous=tracker.anomalous(spec.key) if tracker else [],
        metrics=tracker.summary(spec.key) if tracker else {},
        thresholds=await agent.threshold_suggestions(spec),
        auto_apply=agent.settings.AUTO_THRESHOLDS,
    )


@router.get(
    "/api/services/{service_id}/learning",
    response_model=LearningPublic,
    summary="What was learned about a service's fixes",
    responses=documented(404),
)
async def get_learning(
    service_id: ServiceIdPath, agent: AgentDep, principal: PrincipalDep
) -> LearningPublic:
    """Discounted evidence per (incident type, action) for the service and the fleet."""
    _spec(agent, principal.tenant_id, service_id)
    own = await load_state(agent.db, tenant_id=principal.tenant_id, scope=service_id)
    fleet = await load_state(agent.db, tenant_id=principal.tenant_id, scope=FLEET)
    return LearningPublic(
        service_id=service_id,
        service=[LearnedFixPublic(**f.as_dict()) for f in own],
        fleet=[LearnedFixPublic(**f.as_dict()) for f in fleet],
    )


@router.delete(
    "/api/services/{service_id}/learning",
    response_model=LearningReset,
    summary="Forget what was learned about a service",
    responses=documented(404),
)
async def delete_learning(
    service_id: ServiceIdPath, agent: AgentDep, principal: PrincipalDep
) -> LearningReset:
    """Fix evidence and learned baselines of this service start again from the fleet and
    the catalog (after a redeploy that changes how it fails, for instance)."""
    spec = _spec(agent, principal.tenant_id, service_id)
    fixes = await reset_service(agent.db, tenant_id=spec.tenant_id, service_id=service_id)
    async with agent.db.session() as session:
        baselines = await learning_repo.delete_baselines(
            session=session, tenant_id=spec.tenant_id, service_id=service_id
        )
        await audit_repo.audit(
            session=session,
            tenant_id=spec.tenant_id,
            actor=principal.key_name,
            verb="learning.reset",
            target=service_id,
            detail={"fixes": fixes, "baselines": baselines},
        )
    if agent.baselines is not None:
        baselines = max(baselines, len(agent.baselines.summary(spec.key)))
        agent.baselines.forget(spec.key)
    return LearningReset(
        service_id=service_id, fixes_forgotten=fixes, baselines_forgotten=baselines
    )


@router.get("/api/insights", response_model=InsightsPublic, summary="Patterns in the history")
async def get_insights(
    agent: AgentDep,
    principal: PrincipalDep,
    days: Annotated[int, Query(ge=1, le=365)] = 30,
) -> InsightsPublic:
    """Recurring incidents (time of day, day of week), services that fail together, and
    fixes that stopped working; only findings that survive a multiple-testing correction."""
    found = await load_insights(agent.db, tenant_id=principal.tenant_id, days=days)

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
