"""``GET /api/incidents?status=unresolved``: every incident not resolved, whatever its status.

``status=open`` found nothing while two incidents were escalated and unresolved, and the
dashboard made one call per unresolved status to work around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfheal.storage.repositories import incidents as repo
from selfheal.testing import AgentServer
from tests.acceptance.test_bad_input import assert_error
from tests.conftest import api_client
from tests.helpers import list_incidents

INCIDENTS_JS = Path(__file__).resolve().parents[2] / "src/selfheal/web/static/incidents.js"


async def _incident(server: AgentServer, service_id: str, status: str) -> int:
    async with server.agent.db.session() as session:
        row, _ = await repo.open_incident(
            session=session,
            tenant_id="default",
            service_id=service_id,
            type="http_error",
            severity="high",
            summary=f"{service_id} answers 500",
            details={},
        )
        if status != "open":
            assert await repo.transition(
                session=session,
                tenant_id="default",
                incident_id=row.id,
                to=status,
                allowed_from=["open"],
            )
    return row.id


async def test_unresolved_lists_every_status_but_resolved(
    database_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        first = await _incident(server, "a", "escalated")
        second = await _incident(server, "b", "escalated")
        opened = await _incident(server, "c", "open")
        await _incident(server, "d", "resolved")
        async with api_client(server.url) as client:
            assert [i["id"] for i in await list_incidents(client, status="open")] == [opened]
            unresolved = await list_incidents(client, status="unresolved")
            assert [i["id"] for i in unresolved] == [opened, second, first]  # newest first
            assert {i["status"] for i in unresolved} == {"open", "escalated"}
            escalated = await list_incidents(client, status="escalated", service_id="b")
            assert [i["id"] for i in escalated] == [second]
            # the filter pages like the others
            page = await list_incidents(client, status="unresolved", limit=2)
            assert [i["id"] for i in page] == [opened, second]
            response = await client.get("/api/incidents", params={"status": "broken"})
            assert_error(response, 422, "validation_error", "status", "unresolved")


async def test_the_list_serializes_each_incident_as_the_detail_does(
    database_url: str, make_settings: Any
) -> None:
    # the list builds its page from rows without validating each; the detail validates
    async with AgentServer(make_settings(database_url, CHECK_INTERVAL=30.0)) as server:
        ids = [await _incident(server, name, "escalated") for name in ("a", "b")]
        async with server.agent.db.session() as session:
            await repo.acknowledge(session=session, tenant_id="default", incident_id=ids[0], by="x")
        async with api_client(server.url) as client:
            listed = (await client.get("/api/incidents")).json()["data"]
            assert [i["id"] for i in listed] == ids[::-1]
            for item in listed:
                detail = (await client.get(f"/api/incidents/{item['id']}")).json()
                assert item == {k: detail[k] for k in item}
                assert set(detail) - set(item) == {"timeline", "actions"}


def test_the_dashboard_loads_unresolved_incidents_in_one_call() -> None:
    script = INCIDENTS_JS.read_text()
    assert script.count("/api/incidents?status=") == 1
    assert "/api/incidents?status=unresolved" in script
