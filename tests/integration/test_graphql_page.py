"""GraphiQL at GET /graphql comes from the package: every file it loads is the agent's."""

from __future__ import annotations

import re
from typing import Any

import httpx

from selfheal.testing import AgentServer


async def test_graphiql_loads_nothing_from_elsewhere(sqlite_url: str, make_settings: Any) -> None:
    async with (
        AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30.0)) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        page = await client.get("/graphql", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "GraphiQL" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        # no URL with a scheme or a protocol-relative one: nothing from a CDN
        assert not re.search(r"(https?:)?//[a-z0-9]", page.text, re.IGNORECASE), page.text
        assert 'data-api-key-header="X-API-Key"' in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(assets) == 6
        for asset in assets:
            assert asset.startswith("/graphql/static/")
            answer = await client.get(asset)
            assert answer.status_code == 200, asset
            assert len(answer.content) > 100
            # the vendored bundles load no source map from anywhere
            assert b"sourceMappingURL" not in answer.content
        # the licenses travel with the files
        for name in ("LICENSE.graphiql", "LICENSE.react", "LICENSE.react-dom"):
            assert "MIT" in (await client.get(f"/graphql/static/{name}")).text
        # GET runs no query: a query is a POST with a key
        query = await client.get("/graphql", params={"query": "{ services { id } }"})
        assert query.status_code != 200 or "services" not in query.text
