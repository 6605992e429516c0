"""Every list route pages with the same keyset cursor and a bounded ``limit``."""

from __future__ import annotations

from typing import Any

from selfheal.testing import AgentServer
from tests.conftest import api_client

SERVICES = [f"svc-{n}" for n in range(7)]


async def test_services_page_with_the_incidents_cursor(
    database_url: str, make_settings: Any
) -> None:
    async with (
        AgentServer(make_settings(database_url)) as server,
        api_client(server.url) as client,
    ):
        for sid in SERVICES:
            response = await client.post(
                "/api/services/register",
                json={
                    "service_id": sid,
                    "name": sid,
                    "health_url": "http://127.0.0.1:9/health",
                    "interval": 3600,
                },
            )
            assert response.status_code == 201, response.text
        seen: list[str] = []
        sizes: list[int] = []
        params: dict[str, Any] = {"limit": 3}
        while True:
            page = (await client.get("/api/services", params=params)).json()
            seen += [s["service_id"] for s in page["data"]]
            sizes.append(page["count"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == SERVICES  # oldest first, each once
        assert sizes == [3, 3, 1]
        everything = (await client.get("/api/services")).json()
        assert everything["count"] == len(SERVICES)  # under the default limit: one page
        assert everything["next_cursor"] is None
        for bad in ({"limit": 0}, {"limit": 501}):
            response = await client.get("/api/services", params=bad)
            assert response.status_code == 422, response.text
            assert "limit" in response.json()["error"]["message"]
        response = await client.get("/api/services", params={"cursor": "abc"})
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]["message"]


async def test_list_bounds_are_in_the_openapi_document(sqlite_url: str, make_settings: Any) -> None:
    async with AgentServer(make_settings(sqlite_url)) as server, api_client(server.url) as client:
        spec = (await client.get("/openapi.json")).json()
    for path in ("/api/services", "/api/incidents", "/api/actions"):
        params = {p["name"]: p for p in spec["paths"][path]["get"]["parameters"]}
        assert params["limit"]["schema"]["minimum"] == 1, path
        assert params["limit"]["schema"]["maximum"] == 500, path
        assert "cursor" in params, path
