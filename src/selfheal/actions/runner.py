"""Running one decided action: written down first, executed under a deadline, recorded after.

The action row is inserted with an idempotency key before the executor is
called; a second attempt with the same key is refused by the database, so a
race or a retry can never run one fix twice. The key is per incident attempt
(``tenant:incident:attempt``), not per action: two replicas that chose different
fixes for one attempt still run one. On a cluster the same transaction checks
the heal loop's claim and lease (``cluster/fencing.py``) and the row keeps them.
A failing executor is caught here, at the stage boundary, and recorded on the
action; it never stops the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ValidationError
from structlog.contextvars import bound_contextvars

from selfheal.actions.base import ActionRequest, ActionResult, Executor
from selfheal.cluster.fencing import SINGLE, Fence, Lease
from selfheal.decisions.engine import Decision
from selfheal.errors import ActionError, StorageError
from selfheal.events import EventBus
from selfheal.events import bus as ev
from selfheal.logging import get_logger
from selfheal.metrics import AgentMetrics
from selfheal.services import ServiceSpec
from selfheal.storage.db import Database
from selfheal.storage.repositories import actions as repo
from selfheal.types import ActionStatus

log = get_logger(__name__)

OUTER_MARGIN = 2.0  # seconds past its own timeout before a plugin's run is cut off


@dataclass(frozen=True, slots=True)
class ActionRun:
    """A finished run: its row id and what the executor reported."""

    action_id: int
    action: str
    result: ActionResult


class ActionRunner:
    """Dispatches decisions to executors by name."""

    def __init__(
        self,
        *,
        db: Database,
        bus: EventBus,
        executors: dict[str, Executor],
        metrics: AgentMetrics | None,
        default_timeouts: dict[str, float],
        raise_errors: bool = False,
        options_models: Mapping[str, type[BaseModel] | None] | None = None,
        may_act: Callable[[], bool] | None = None,
        fence: Fence | None = None,
    ) -> None:
        self._db = db
        self._fence = fence
        # False while this replica's cluster lease has lapsed (``selfheal.cluster``)
        self._may_act = may_act
        self._bus = bus
        self._executors = executors
        self._metrics = metrics
        self._timeouts = default_timeouts
        self._raise = raise_errors
        # executor plugins' option models: the service's options are validated per run
        self._models = options_models or {}

    async def run(
        self,
        *,
        spec: ServiceSpec,
        incident_id: int,
        incident_type: str,
        decision: Decision,
        attempt: int,
        lease: Lease = SINGLE,
    ) -> ActionRun | None:
        """Execute once; None when this (incident, attempt) already has an action.

        ``StorageError`` when fenced: the lease lapsed, or ``lease`` no longer holds
        the incident's claim (another replica took the incident over)."""
        assert decision.action is not None
        assert decision.executor is not None
        key = f"{spec.tenant_id}:{incident_id}:{attempt}"
        self._check_lease()
        async with self._db.session() as session:
            if self._fence is not None and not await self._fence.confirm(
                session, spec.tenant_id, incident_id, lease
            ):
                log.warning("action_fenced", incident_id=incident_id, member=lease.member_id)
                raise StorageError(
                    "this replica's claim on the incident or its cluster lease no longer "
                    "holds: the action is not started (the heal loop re-reads what was written)"
                )
            row = await repo.create_action(
                session=session,
                tenant_id=spec.tenant_id,
                incident_id=incident_id,
                service_id=spec.service_id,
                incident_type=incident_type,
                action=decision.action,
                executor=decision.executor,
                params=decision.params,
                idempotency_key=key,
                decision=decision.as_dict(),
                member_id=lease.member_id,
                fence_token=lease.token,
            )
        if row is None:
            log.warning("action_duplicate_refused", idempotency_key=key)
            return None
        remediation = spec.remediation.get(decision.action)
        timeout = self.timeout_for(spec, decision.action, decision.executor)
        request = ActionRequest(
            spec=spec,
            action=decision.action,
            params=decision.params,
            incident_id=incident_id,
            action_id=row.id,
            idempotency_key=key,
            timeout=timeout,
            options=remediation.options if remediation else None,
        )
        # the row write may have outlived the lease: an unfinished row is never re-run
        self._check_lease()
        with bound_contextvars(action_id=row.id, action=decision.action):
            self._bus.publish(ev.ACTION_STARTED, spec.tenant_id, _event(request, decision.executor))
            log.info("action_started", executor=decision.executor)
            result = await self._execute(decision.executor, request)
            status = ActionStatus.SUCCEEDED if result.ok else ActionStatus.FAILED
            async with self._db.session() as session:
                kept = await repo.finish_action(
                    session=session,
                    tenant_id=spec.tenant_id,
                    action_id=row.id,
                    status=status.value,
                    result=result.as_dict(),
                )
            if not kept:
                # another replica took the incident over and marked the action interrupted
                log.warning("action_result_refused", status=status.value)
                raise StorageError("the incident was taken over while its action ran")
            log.info("action_" + status.value, detail=result.detail)
        if self._metrics is not None:
            self._metrics.actions.labels(action=decision.action, outcome=status.value).inc()
        self._bus.publish(
            ev.ACTION_FINISHED,
            spec.tenant_id,
            _event(request, decision.executor) | {"status": status.value, "detail": result.detail},
        )
        return ActionRun(row.id, decision.action, result)

    def timeout_for(self, spec: ServiceSpec, action: str, executor: str) -> float:
        """Seconds one run of ``action`` may take on this service (the executor's bound)."""
        remediation = spec.remediation.get(action)
        return (remediation.timeout if remediation else None) or self._timeouts.get(executor, 30.0)

    def _check_lease(self) -> None:
        """``StorageError`` (the heal loop waits and starts over) while fenced."""
        if self._may_act is not None and not self._may_act():
            raise StorageError(
                "this replica lost its cluster lease: no action starts until it rejoins"
            )

    async def _execute(self, executor_name: str, request: ActionRequest) -> ActionResult:
        executor = self._executors.get(executor_name)
        if executor is None:
            return ActionResult(False, f"no executor named {executor_name!r} is loaded")
        model = self._models.get(executor_name)
        if model is not None:
            try:
                request = replace(request, options=model.model_validate(request.options or {}))
            except ValidationError as exc:
                return ActionResult(False, f"invalid options for {executor_name}: {exc}"[:1000])
        try:
            # the executor has the timeout too; this outer one stops a plugin that ignores it
            return await asyncio.wait_for(executor.execute(request), request.timeout + OUTER_MARGIN)
        except ActionError as exc:
            return ActionResult(False, exc.message)
        except TimeoutError:
            return ActionResult(False, f"no result within {request.timeout:g}s")
        except Exception as exc:
            log.exception("executor_crashed", executor=executor_name)
            if self._raise:
                raise
            return ActionResult(False, f"executor {executor_name} failed: {type(exc).__name__}")


def _event(request: ActionRequest, executor: str) -> dict[str, Any]:
    return {
        "action_id": request.action_id,
        "incident_id": request.incident_id,
        "service_id": request.spec.service_id,
        "action": request.action,
        "executor": executor,
    }
