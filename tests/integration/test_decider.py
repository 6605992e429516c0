"""The decider's candidate-level guard rails on real databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from selfheal.config import Settings
from selfheal.configfile import BreakerConfig, PoliciesConfig, RemediationSpec
from selfheal.decisions.engine import Decider
from selfheal.decisions.policy import resolve
from selfheal.services import ServiceSpec, build_spec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions, catalog, incidents, tenants
from selfheal.types import ServiceKey

SETTINGS = Settings(_env_file=None)  # type: ignore[call-arg]


def spec(**kw: object) -> ServiceSpec:
    values: dict[str, object] = {
        "webhook_url": "http://127.0.0.1:1/webhook",
        "secret": "s" * 10,
        "cooldown": 0,
    }
    values.update(kw)
    return build_spec(
        SETTINGS,
        key=ServiceKey("t", "svc"),
        name=None,
        health_url="http://127.0.0.1:1/h",
        **values,  # type: ignore[arg-type]
    )


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    async with database.session() as session:
        await tenants.ensure_tenant(session=session, tenant_id="t")
        await catalog.replace_catalog(
            session=session,
            tenant_id="t",
            entries={"http_error": [("restart", {}), ("rollback", {"to": "previous"})]},
        )
    yield database
    await database.close()


async def past_action(db: Database, action: str, outcome: str, n: int = 1) -> None:
    async with db.session() as session:
        row, _ = await incidents.open_incident(
            session=session,
            tenant_id="t",
            service_id="svc",
            type="http_error",
            severity="high",
            summary="",
            details={},
        )
        for i in range(n):
            created = await actions.create_action(
                session=session,
                tenant_id="t",
                incident_id=row.id,
                service_id="svc",
                incident_type="http_error",
                action=action,
                executor="webhook",
                params={},
                idempotency_key=f"{action}-{outcome}-{i}-{row.id}",
                decision={},
            )
            assert created is not None
            await actions.record_outcome(
                session=session,
                tenant_id="t",
                action_id=created.id,
                outcome=outcome,
                recovery_seconds=None,
            )


async def test_catalog_order_then_untried_before_retry(db: Database) -> None:
    decider = Decider(db, resolve(SETTINGS))
    first = await decider.decide(spec(), "http_error", {})
    assert (first.action, first.executor) == ("restart", "webhook")
    assert "catalog order decides" in first.reason
    second = await decider.decide(spec(), "http_error", {"restart": 1})
    assert second.action == "rollback"
    assert second.params == {"to": "previous"}
    third = await decider.decide(spec(), "http_error", {"restart": 1, "rollback": 1})
    assert third.action == "restart"
    assert "retry 2" in third.reason


async def test_cooldown_and_not_runnable_are_skipped_with_their_rule(db: Database) -> None:
    await past_action(db, "restart", "recovered")
    decider = Decider(db, resolve(SETTINGS))
    decision = await decider.decide(spec(cooldown=600), "http_error", {})
    assert decision.action == "rollback"
    assert decision.considered[0]["rule"] == "cooldown"
    no_way = await decider.decide(spec(webhook_url=None, secret=None), "http_error", {})
    assert no_way.escalate
    assert {c["rule"] for c in no_way.considered} == {"runnable"}
    local = await decider.decide(
        spec(webhook_url=None, secret=None, remediation={"rollback": RemediationSpec(exec="true")}),
        "http_error",
        {},
    )
    assert (local.action, local.executor) == ("rollback", "exec")


async def test_breaker_opens_after_consecutive_failures(db: Database) -> None:
    policies = resolve(SETTINGS, PoliciesConfig(breaker=BreakerConfig(failures=2)))
    decider = Decider(db, policies)
    await past_action(db, "restart", "not_recovered", n=2)
    decision = await decider.decide(spec(), "http_error", {})
    assert decision.action == "rollback"
    restart = next(c for c in decision.considered if c["action"] == "restart")
    assert restart["rule"] == "breaker"
    await past_action(db, "rollback", "not_recovered", n=1)
    await past_action(db, "rollback", "recovered", n=1)
    assert (await decider.decide(spec(), "http_error", {})).action == "rollback"


async def test_restart_backoff_asks_to_wait(db: Database) -> None:
    decider = Decider(db, resolve(SETTINGS), backoff_wait=lambda _spec: 7.0)
    decision = await decider.decide(spec(), "http_error", {"rollback": 1})
    assert decision.action == "rollback"  # something else can run now
    held = await decider.decide(spec(remediation={}), "http_error", {})
    assert held.action == "rollback"
    only_restart = Decider(db, resolve(SETTINGS), backoff_wait=lambda _spec: 7.0)
    async with db.session() as session:
        await catalog.replace_catalog(
            session=session, tenant_id="t", entries={"http_error": [("restart", {})]}
        )
    waiting = await only_restart.decide(spec(), "http_error", {})
    assert waiting.action is None
    assert waiting.retry_after == 7.0
    assert not waiting.escalate


async def test_a_fix_in_cooldown_is_waited_for_never_exhausted(db: Database) -> None:
    # the service can only restart, and restarted a moment ago (a crash 3 s after it)
    await past_action(db, "restart", "recovered")
    only_restart = spec(
        webhook_url=None,
        secret=None,
        cooldown=60,
        remediation={"restart": RemediationSpec(exec="true")},
    )
    decision = await Decider(db, resolve(SETTINGS)).decide(only_restart, "http_error", {})
    assert not decision.escalate
    assert decision.action is None
    assert decision.retry_after is not None
    assert 55 < decision.retry_after <= 60
    assert "until" in decision.reason
    assert decision.considered[0]["rule"] == "cooldown"


async def test_a_preferred_fix_goes_first_among_the_untried(db: Database) -> None:
    decider = Decider(db, resolve(SETTINGS))
    preferred = await decider.decide(spec(), "http_error", {}, prefer="rollback")
    assert preferred.action == "rollback"
    assert "rollback goes first" in preferred.reason
    # once tried, untried fixes come first again
    again = await decider.decide(spec(), "http_error", {"rollback": 1}, prefer="rollback")
    assert again.action == "restart"
