"""/docs works offline: Swagger UI's files come from the agent, no external host."""

from __future__ import annotations

import re
from typing import Any

import httpx

from selfheal.testing import AgentServer


async def test_docs_page_references_no_external_host(sqlite_url: str, make_settings: Any) -> None:
    async with (
        AgentServer(make_settings(sqlite_url)) as server,
        httpx.AsyncClient(base_url=server.url) as anonymous,
    ):
        page = await anonymous.get("/docs")
        assert page.status_code == 200
        html = page.text
        assert "SwaggerUIBundle" in html
        references = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
        references += re.findall(r"""url\s*:\s*["']([^"']+)["']""", html)
        assert references
        for ref in references:
            assert not re.match(r"^(?:[a-z]+:)?//", ref, re.I), f"{ref} is on another host"
        assert "validatorUrl" in html  # Swagger UI must not call its public validator
        for ref in references:
            asset = await anonymous.get(ref)
            assert asset.status_code == 200, ref
            assert len(asset.content) > 100, ref
        bundle = await anonymous.get("/docs/static/swagger-ui-bundle.js")
        assert "javascript" in bundle.headers["content-type"]
        # the license of the files served travels with them
        assert (await anonymous.get("/docs/static/LICENSE")).status_code == 200
