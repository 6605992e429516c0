"""hypothesis-graphql fuzzes /graphql (queries and mutations) on the real agent: 0 server
errors (no 5xx, no INTERNAL_ERROR in an answer), over a bounded number of documents."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import from_schema, nodes

from selfheal.api.graphql.schema import build_schema
from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY

EXAMPLES = 600  # 8 s per 400 on an idle machine, 40 s per 1,000 on a busy one
SCALARS = {
    "DateTime": st.datetimes().map(lambda d: nodes.String(d.isoformat())),
    "JSON": st.one_of(
        st.integers(-(2**70), 2**70).map(nodes.Int),
        st.text(max_size=20).map(nodes.String),
        st.just(nodes.Object([])),
    ),
}


async def test_fuzzing_the_schema_gives_no_server_error(
    sqlite_url: str, make_settings: Any
) -> None:
    async with AgentServer(make_settings(sqlite_url, CHECK_INTERVAL=30.0)) as server:
        failures: list[str] = []
        codes: dict[str, int] = {}
        kinds: dict[str, int] = {}
        client = httpx.Client(base_url=server.url, headers={"X-API-Key": TEST_KEY}, timeout=30)

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(document=from_schema(build_schema().as_str(), custom_scalars=SCALARS))
        def one(document: str) -> None:
            kind = document.split("{", 1)[0].strip() or "query"
            kinds[kind] = kinds.get(kind, 0) + 1
            answer = client.post("/graphql", json={"query": document})
            if answer.status_code >= 500:
                failures.append(f"{answer.status_code} for {document}: {answer.text[:300]}")
                return
            for error in answer.json().get("errors") or []:
                code = (error.get("extensions") or {}).get("code", "none")
                codes[code] = codes.get(code, 0) + 1
                if code in ("INTERNAL_ERROR", "none"):
                    failures.append(f"{error} for {document}")

        started = time.monotonic()
        await asyncio.to_thread(one)  # the agent keeps serving on this loop meanwhile
        client.close()
        took = time.monotonic() - started
        print(f"\n{kinds} in {took:.1f} s; error codes {codes}")
        assert failures == []
        assert kinds.get("mutation", 0) > EXAMPLES // 10  # mutations were fuzzed too
