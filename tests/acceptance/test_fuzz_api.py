"""Schemathesis against the real agent: no generated request is answered 5xx.

The agent runs under uvicorn on a loopback port (``AgentServer``) with a real SQLite or
PostgreSQL database; schemathesis generates requests from the served OpenAPI document,
valid ones (positive) and ones that break it (negative), with a valid API key. Every
answer must be below 500, and every 4xx an operation gives must be listed in its document.

Generated URLs are pointed at a closed loopback port before sending: tests never reach
past loopback, and what is checked is the API's handling, not the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from selfheal.testing import AgentServer
from tests.conftest import TEST_KEY

# generated examples per operation and mode: about 2,400 requests per database (some operations
# have fewer distinct inputs), within a minute or two per database on an idle machine
EXAMPLES = 55
MINIMUM_REQUESTS = 2_000
# never-ending answers (the live feed) are tested where they live
SKIP = {("GET", "/api/events/stream")}
_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass
class Tally:
    """What the fuzzing saw."""

    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    undocumented: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)


def _loopback(value: Any) -> Any:
    """Point every generated http(s) URL at a closed loopback port (tests stay local)."""
    if isinstance(value, dict):
        return {k: _loopback(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_loopback(v) for v in value]
    if isinstance(value, str) and _URL.match(value):
        return "http://127.0.0.1:9/health"
    return value


def _fuzz(base_url: str, document: dict[str, Any], examples: int) -> Tally:
    schema = schemathesis.openapi.from_dict(document)
    tally = Tally()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, base_url, session, examples, tally)
    return tally


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    examples: int,
    tally: Tally,
) -> None:
    documented = {int(code) for code in operation.definition.raw["responses"] if code.isdigit()}
    strategy = operation.as_strategy(mode, headers={"X-API-Key": TEST_KEY})

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure reproduces
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if isinstance(case.body, dict | list):
            case.body = _loopback(case.body)
        label = f"{case.method} {case.path}"
        tally.requests += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=10)
        except requests.RequestException as exc:
            tally.server_errors.append(f"{label} -> no answer ({exc})")
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors.append(
                f"{label} -> {response.status_code}: {case.as_curl_command()}"
            )
        elif response.status_code >= 400 and response.status_code not in documented:
            tally.undocumented.add(f"{label} answers {response.status_code}")

    # nothing to generate in this mode (no parameters to break) is not a failure
    with contextlib.suppress(Unsatisfiable, schemathesis.errors.SchemathesisError):
        run()


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_generated_requests_get_no_server_error(
    database_url: str, make_settings: Any
) -> None:
    settings_ = make_settings(database_url, CHECK_INTERVAL=30.0)
    async with AgentServer(settings_) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            document = (await client.get("/openapi.json")).json()
        tally = await asyncio.to_thread(_fuzz, server.url, document, EXAMPLES)
    print(
        f"\n{tally.requests} generated requests, {len(tally.server_errors)} server errors, "
        f"statuses {dict(sorted(tally.statuses.items()))}"
    )
    assert tally.requests >= MINIMUM_REQUESTS
    assert tally.server_errors == [], "\n".join(tally.server_errors[:20])
    assert sorted(tally.undocumented) == []
