"""The SDK's webhook dispatch: verify, run once per action id, answer with the result."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from self_healing_sdk import SelfHealingAgent, sign
from self_healing_sdk._actions import ActionRegistry
from self_healing_sdk.signing import verify

SECRET = "service-secret"
SERVICE = "shop"


def delivery(
    action: str = "restart", action_id: int | None = 7, **overrides: Any
) -> tuple[dict[str, str], bytes]:
    body: dict[str, Any] = {
        "action": action,
        "incident_id": 3,
        "action_id": action_id,
        "idempotency_key": f"t:3:1:{action}",
        "params": {"level": 2},
    } | overrides
    raw = json.dumps(body).encode()
    return sign(SECRET, SERVICE, raw), raw


def make_agent() -> tuple[SelfHealingAgent, list[tuple[dict[str, Any], int]]]:
    agent = SelfHealingAgent("http://127.0.0.1:9", "team-a", SERVICE, SECRET, api_key="k")
    calls: list[tuple[dict[str, Any], int]] = []

    @agent.action("restart")
    def restart(params: dict[str, Any], incident_id: int) -> dict[str, Any]:
        calls.append((params, incident_id))
        return {"restarted": True, "workers": 4}

    @agent.action("clear_cache")
    def clear_cache(params: dict[str, Any], incident_id: int) -> None:
        calls.append((params, incident_id))
        raise RuntimeError("cache is locked")

    return agent, calls


def test_handler_gets_params_and_incident_and_its_result_is_the_answer() -> None:
    agent, calls = make_agent()
    answer = agent.handle_webhook(*delivery())
    assert answer.status == 200
    assert answer.body == {
        "ok": True,
        "action": "restart",
        "action_id": 7,
        "incident_id": 3,
        "result": {"restarted": True, "workers": 4},
        "detail": '{"restarted": true, "workers": 4}',
    }
    # signed like the agent's requests, so the agent can trust its detail
    content, headers = answer.encoded()
    verify(SECRET, headers, content, service_id=SERVICE)
    assert headers["Content-Type"] == "application/json"
    assert calls == [({"level": 2}, 3)]
    assert json.loads(answer.content()) == answer.body


def test_handler_exception_is_a_500_with_the_error() -> None:
    agent, calls = make_agent()
    answer = agent.handle_webhook(*delivery("clear_cache"))
    assert answer.status == 500
    assert answer.body["error"] == {
        "code": "action_failed",
        "message": "RuntimeError: cache is locked",
    }
    assert len(calls) == 1


def test_unknown_action_and_malformed_bodies() -> None:
    agent, calls = make_agent()
    answer = agent.handle_webhook(*delivery("scale"))
    assert answer.status == 404
    assert "clear_cache, restart" in answer.body["error"]["message"]
    raw = b"not json"
    assert agent.handle_webhook(sign(SECRET, SERVICE, raw), raw).status == 400
    assert agent.handle_webhook(*delivery(incident_id="x")).status == 400
    assert agent.handle_webhook(*delivery(params=[1])).status == 400
    assert calls == []


def test_a_duplicate_action_id_does_not_run_the_handler_twice() -> None:
    agent, calls = make_agent()
    first = agent.handle_webhook(*delivery(action_id=11))
    # the same action delivered again, freshly signed (a replay would be refused earlier)
    headers, raw = delivery(action_id=11)
    headers["X-SelfHeal-Timestamp"] = str(int(headers["X-SelfHeal-Timestamp"]) - 1)
    headers = headers | sign(SECRET, SERVICE, raw, timestamp=int(headers["X-SelfHeal-Timestamp"]))
    second = agent.handle_webhook(headers, raw)
    assert len(calls) == 1
    assert second.status == first.status == 200
    assert second.body == dict(first.body) | {"duplicate": True}


def test_a_duplicate_while_the_first_runs_is_a_409() -> None:
    agent = SelfHealingAgent("http://127.0.0.1:9", "team-a", SERVICE, SECRET, api_key="k")
    started, release = threading.Event(), threading.Event()

    @agent.action("scale")
    def scale(params: dict[str, Any], incident_id: int) -> str:
        started.set()
        release.wait(5)
        return "scaled"

    results = []
    worker = threading.Thread(
        target=lambda: results.append(agent.handle_webhook(*delivery("scale")))
    )
    worker.start()
    assert started.wait(5)
    headers, raw = delivery("scale")
    headers |= sign(SECRET, SERVICE, raw, timestamp=int(headers["X-SelfHeal-Timestamp"]) + 1)
    assert agent.handle_webhook(headers, raw).status == 409
    release.set()
    worker.join(5)
    assert results[0].status == 200
    assert results[0].body["result"] == "scaled"


@pytest.mark.parametrize("case", ["tampered", "wrong_secret", "stale", "wrong_service", "replay"])
def test_bad_signatures_are_rejected_and_nothing_runs(case: str) -> None:
    agent, calls = make_agent()
    headers, raw = delivery()
    if case == "tampered":
        raw = raw.replace(b'"level": 2', b'"level": 9')
    elif case == "wrong_secret":
        headers = sign("another-secret", SERVICE, raw)
    elif case == "stale":
        headers = sign(SECRET, SERVICE, raw, timestamp=int(headers["X-SelfHeal-Timestamp"]) - 301)
    elif case == "wrong_service":
        headers = sign(SECRET, "other-service", raw)
    else:
        assert agent.handle_webhook(headers, raw).status == 200
        calls.clear()
    answer = agent.handle_webhook(headers, raw)
    assert answer.status == 401
    assert answer.body["error"]["code"] == "signature_rejected"
    assert calls == []


def test_verify_webhook_is_the_plain_check() -> None:
    agent, _calls = make_agent()
    headers, raw = delivery()
    assert agent.verify_webhook(headers, raw)["action"] == "restart"


async def test_async_dispatch_runs_sync_handlers_in_a_thread_and_awaits_async_ones() -> None:
    agent, _calls = make_agent()
    threads: list[str] = []

    @agent.action("degrade")
    async def degrade(params: dict[str, Any], incident_id: int) -> dict[str, bool]:
        await asyncio.sleep(0)
        return {"degraded": True}

    @agent.action("probe_thread")
    def probe_thread(params: dict[str, Any], incident_id: int) -> str:
        threads.append(threading.current_thread().name)
        return "ok"

    assert (await agent.handle_webhook_async(*delivery("degrade", 1))).body["result"] == {
        "degraded": True
    }
    assert (await agent.handle_webhook_async(*delivery("probe_thread", 2))).status == 200
    assert threads
    assert threads[0] != threading.current_thread().name
    failed = await agent.handle_webhook_async(*delivery("clear_cache", 3))
    assert failed.status == 500
    # an async handler also works on a threaded route
    assert agent.handle_webhook(*delivery("degrade", 4)).body["result"] == {"degraded": True}


def test_registering_an_action_twice_is_an_error() -> None:
    registry = ActionRegistry()
    registry.add("restart", lambda p, i: None)
    with pytest.raises(ValueError, match="already registered"):
        registry.add("restart", lambda p, i: None)
    with pytest.raises(ValueError, match="name"):
        registry.add("", lambda p, i: None)


def test_config_update_and_degrade_handlers_get_checked_params() -> None:
    agent = SelfHealingAgent("http://127.0.0.1:9", "team-a", SERVICE, SECRET, api_key="k")
    settings: dict[str, Any] = {}
    levels: list[int] = []

    @agent.on_config_update
    def apply(key: str, value: Any) -> dict[str, Any]:
        settings[key] = value
        return {"applied": key}

    @agent.on_degrade
    def degrade(level: int) -> dict[str, Any]:
        levels.append(level)
        return {"level": level}

    answer = agent.handle_webhook(
        *delivery("config_update", 11, params={"key": "safe_mode", "value": True})
    )
    assert answer.status == 200
    assert answer.body["result"] == {"applied": "safe_mode"}
    assert settings == {"safe_mode": True}

    answer = agent.handle_webhook(*delivery("degrade", 12, params={"level": 2}))
    assert answer.status == 200
    assert answer.body["result"] == {"level": 2}

    bad = agent.handle_webhook(*delivery("config_update", 13, params={"value": 1}))
    assert bad.status == 500
    assert 'needs params {"key"' in bad.body["error"]["message"]
    bad = agent.handle_webhook(*delivery("degrade", 14, params={"level": -1}))
    assert bad.status == 500
    assert levels == [2]


def test_default_catalog_carries_degrade_and_config_update_with_params() -> None:
    from selfheal.decisions.catalog import default_entries

    entries = default_entries()
    assert ("degrade", {"level": 1}) in entries["high_latency"]
    assert ("degrade", {"level": 1}) in entries["high_cpu"]
    assert ("config_update", {"key": "safe_mode", "value": True}) in entries["high_error_rate"]
    assert entries["cert_expiring"] == []
