"""A replica cut off from PostgreSQL mid-action (a black-holed TCP proxy the test controls).

Replica A heals an incident and its webhook is in flight when its database route
is black-holed. A fences itself, B takes the service and the incident over (the
action is marked interrupted and verified, never re-run), and when the route
heals A rejoins under a new fencing token: its late result is refused, and it
runs nothing more for that incident.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from selfheal.storage.repositories import actions as actions_repo
from selfheal.testing import AgentServer, FakeService
from selfheal.types import DEFAULT_TENANT, ServiceKey
from tests.conftest import _create_postgres_database, _drop_postgres_database, api_client
from tests.helpers import TcpProxy, wait_for


@pytest.mark.timeout(150)
async def test_a_partitioned_replica_is_fenced_and_its_incident_moves(make_settings: Any) -> None:
    name, url = await _create_postgres_database()
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    behind = url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        async with (
            AgentServer(make_settings(behind, VERIFY_TIMEOUT=12)) as a,
            AgentServer(make_settings(url, VERIFY_TIMEOUT=12)) as b,
        ):

            async def both_joined() -> bool:
                views = (a.agent.cluster.membership.view, b.agent.cluster.membership.view)
                return all(len(view) == 2 for view in views)

            await wait_for(both_joined, 10, interval=0.05)
            sid = next(
                f"p-{i}"
                for i in range(200)
                if a.agent.cluster.ownership.owns(ServiceKey(DEFAULT_TENANT, f"p-{i}"))
            )
            async with (
                FakeService(service_id=sid, action_delay=3.0) as service,
                api_client(b.url) as via_b,
            ):
                registered = await via_b.post(
                    "/api/services/register",
                    json={
                        "service_id": sid,
                        "health_url": service.health_url,
                        "webhook_url": service.webhook_url,
                        "secret": service.secret,
                        "interval": 1,
                    },
                )
                assert registered.status_code == 201, registered.text
                await asyncio.sleep(1.5)
                service.break_as("http_500")

                async def in_flight() -> bool:
                    return len(service.accepted_calls) == 1

                await wait_for(in_flight, 20, interval=0.02)
                body = service.accepted_calls[0].body
                assert body is not None
                incident_id = int(body["incident_id"])
                old_token = a.agent.cluster.membership.token
                proxy.blackhole()

                async def fenced() -> bool:
                    return a.agent.cluster.membership.fenced

                await wait_for(fenced, 10, interval=0.02)

                async def resolved_by_b() -> dict[str, Any] | None:
                    got = (await via_b.get(f"/api/incidents/{incident_id}")).json()
                    return got if got["status"] in ("resolved", "escalated") else None

                detail = await wait_for(resolved_by_b, 40)
                assert detail["status"] == "resolved", detail["timeline"]
                assert [x["status"] for x in detail["actions"]] == ["interrupted"]

                # the route heals: A rejoins with a new token and takes nothing over
                proxy.heal()

                async def rejoined() -> bool:
                    return not a.agent.cluster.membership.fenced

                await wait_for(rejoined, 20, interval=0.05)
                assert a.agent.cluster.membership.token != old_token
                await asyncio.sleep(3)  # A's heal loop retries, finds the incident gone
                assert len(service.accepted_calls) == 1
                async with b.agent.db.session() as session:
                    rows = await actions_repo.actions_for_incident(
                        session=session, tenant_id=DEFAULT_TENANT, incident_id=incident_id
                    )
                assert [(r.member_id, r.fence_token, r.status) for r in rows] == [
                    (a.agent.cluster.member_id, old_token, "interrupted")
                ]
    finally:
        await proxy.cut()
        await _drop_postgres_database(name)
