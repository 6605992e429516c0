"""`selfheal config export --tenant T` then `selfheal config apply` reproduces the tenant.

A tenant set up through the API (services with a secret, its own policies and
quotas, catalog, channels with secrets, a silence) is exported, applied to an
empty database, and exported again: the same file. Secrets never appear in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from selfheal.cli.main import cli
from selfheal.crypto import SecretBox
from selfheal.storage.db import Database
from selfheal.storage.repositories.tenants import add_api_key
from selfheal.storage.tables import Service
from selfheal.testing import AgentServer
from tests.conftest import _create_postgres_database, _drop_postgres_database, api_client

B_ADMIN = "team-b-admin-key-000001"
SECRET_KEY = "test-secret-key-not-for-production"
SHOP_SECRET = "shop-webhook-secret-0123456789"
HOOK = "http://127.0.0.1:7001/slack?token=T0KEN-slack-9876"
MAIL_PASSWORD = "mail-password-42"
AGENT_CONFIG = "tenants:\n  team-b: {outbound_allow: [127.0.0.0/8]}\n"
REFERENCES = {
    "SELFHEAL_TEAM_B_SHOP_SECRET": SHOP_SECRET,
    "SELFHEAL_TEAM_B_CHANNEL_PAGER_URL": HOOK,
    "SELFHEAL_TEAM_B_CHANNEL_MAIL_PASSWORD": MAIL_PASSWORD,
}


@pytest.fixture
async def empty_database(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A second empty database of the same kind."""
    if database_url.startswith("sqlite"):
        yield f"sqlite+aiosqlite:///{tmp_path / 'target.db'}"
        return
    name, url = await _create_postgres_database()
    try:
        yield url
    finally:
        await _drop_postgres_database(name)


async def _cli(args: list[str], database_url: str, config: Path, **extra: str) -> Result:
    """The CLI runs its own event loop: off this test's loop, in a thread."""
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "SELFHEAL_CONFIG": str(config)}
    return await asyncio.to_thread(CliRunner().invoke, cli, args, env=env | extra)


async def _set_up_tenant(server: AgentServer) -> None:
    async with server.agent.db.session() as session:
        await add_api_key(session=session, tenant_id="team-b", key=B_ADMIN, name="b", scope="admin")
    await server.agent.reload_keys()
    b = api_client(server.url, B_ADMIN)
    shop = {
        "service_id": "shop",
        "name": "The shop",
        "health_url": "http://127.0.0.1:9/health",
        "webhook_url": "http://127.0.0.1:9/webhook",
        "secret": SHOP_SECRET,
        "tags": ["critical", "web"],
        "metadata": {"team": "b"},
        "interval": "30s",
        "thresholds": {"latency_ms": 800},
    }
    answers = [
        await b.post("/api/services/register", json=shop),
        await b.post(
            "/api/services/register",
            json={"service_id": "cart", "health_url": "http://127.0.0.1:9/cart"},
        ),
        await b.put(
            "/api/tenant/policies",
            json={"dry_run": True, "max_attempts": 2, "breaker": {"failures": 4}},
        ),
        await b.put("/api/tenant/quotas", json={"max_services": 5, "requests_per_second": 50}),
        await b.put(
            "/api/catalog",
            json={
                "entries": {
                    "http_error": ["restart", {"action": "notify", "params": {"message": "hi"}}]
                }
            },
        ),
        await b.put("/api/tenant/channels/pager", json={"type": "slack", "url": HOOK}),
        await b.put(
            "/api/tenant/channels/mail",
            json={
                "type": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": 2525,
                "username": "selfheal",
                "password": MAIL_PASSWORD,
                "from": "selfheal@example.test",
                "to": ["oncall@example.test"],
                "min_severity": "high",
            },
        ),
        await b.post(
            "/api/silences",
            json={"matchers": {"tags": ["web"]}, "duration": "2h", "comment": "migration"},
        ),
    ]
    assert [a.status_code for a in answers] == [201, 201, 200, 200, 200, 201, 201, 201], [
        a.text for a in answers
    ]
    await b.aclose()


async def test_export_then_apply_on_an_empty_database_reproduces_the_tenant(
    database_url: str, empty_database: str, make_settings: Any, tmp_path: Path
) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(AGENT_CONFIG)
    settings = make_settings(database_url, SELFHEAL_CONFIG=config)
    async with AgentServer(settings) as server:
        await _set_up_tenant(server)

    first = await _cli(["config", "export", "--tenant", "team-b"], database_url, config)
    assert first.exit_code == 0, first.output
    text = first.stdout
    for secret in (SHOP_SECRET, "T0KEN", MAIL_PASSWORD):
        assert secret not in text
    for name in REFERENCES:
        assert f"#   {name}\n" in text
        assert f"${{{name}}}" in text
    assert "id: shop" in text
    assert "dry_run: true" in text
    assert "max_services: 5" in text
    exported = tmp_path / "team-b.yaml"
    exported.write_text(text)

    # without the variables, apply says which one is missing and where
    missing = await _cli(["config", "apply", str(exported)], empty_database, config)
    assert missing.exit_code == 2
    assert "environment variable SELFHEAL_TEAM_B_SHOP_SECRET is not set" in missing.output
    applied = await _cli(["config", "apply", str(exported)], empty_database, config, **REFERENCES)
    assert applied.exit_code == 0, applied.output
    assert "2 services" in applied.output
    assert "2 channels" in applied.output
    assert "1 silences" in applied.output
    again = await _cli(["config", "export", "--tenant", "team-b"], empty_database, config)
    assert again.exit_code == 0, again.output
    assert again.stdout == text
    # applying twice changes nothing
    twice = await _cli(["config", "apply", str(exported)], empty_database, config, **REFERENCES)
    assert twice.exit_code == 0, twice.output
    third = await _cli(["config", "export", "--tenant", "team-b"], empty_database, config)
    assert third.stdout == text
    # the secrets arrived (encrypted), not the references
    db = Database(empty_database)
    try:
        async with db.session() as session:
            shop = (
                await session.execute(select(Service).where(Service.service_id == "shop"))
            ).scalar_one()
        assert shop.secret_encrypted is not None
        assert SecretBox(SECRET_KEY).decrypt(shop.secret_encrypted, what="shop") == SHOP_SECRET
    finally:
        await db.close()
    unknown = await _cli(["config", "export", "--tenant", "nobody"], empty_database, config)
    assert unknown.exit_code == 2
    assert "no tenant 'nobody'" in unknown.output
