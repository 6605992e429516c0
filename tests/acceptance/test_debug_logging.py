"""At LOG_LEVEL=DEBUG the real log output holds no secret: no SQL parameters (key
hashes, stored values), no password of the database URL or of a service URL, no key."""

from __future__ import annotations

from pathlib import Path

from selfheal.storage.repositories.tenants import hash_key
from selfheal.testing import FakeService, free_port
from tests.conftest import TEST_KEY, api_client
from tests.helpers import AgentProcess

DB_PASSWORD = "db-pass-9f3e71"  # PostgreSQL here trusts loopback: ignored
URL_PASSWORD = "url-pass-7c1d22"
SECRET_KEY = "debug-test-secret-key-0123456789"


async def test_debug_log_holds_no_secret(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("postgresql"):
        database_url = database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    config = tmp_path / "selfheal.yaml"
    config.write_text("services: []\n")
    log_file = tmp_path / "agent.log"
    agent = AgentProcess(
        config=str(config),
        env={
            "LOG_LEVEL": "DEBUG",
            "LOG_FILE": str(log_file),
            "DATABASE_URL": database_url,
            "API_KEYS": TEST_KEY,
            "SECRET_KEY": SECRET_KEY,
            "DATA_DIR": str(tmp_path / "data"),
        },
        port=free_port(),
        log_path=tmp_path / "stdout.log",
    )
    async with FakeService(service_id="shop") as service:
        await agent.start()
        try:
            client = api_client(agent.url)
            url = service.health_url.replace("://", f"://probe-user:{URL_PASSWORD}@")
            body = {"service_id": "shop", "health_url": url, "secret": "s" * 20}
            assert (await client.post("/api/services/register", json=body)).status_code == 201
            assert (await client.get("/api/services")).status_code == 200
            await client.aclose()
        finally:
            await agent.stop()
    written = log_file.read_text() + (tmp_path / "stdout.log").read_text()
    assert "agent_started" in written
    for secret in (DB_PASSWORD, URL_PASSWORD, TEST_KEY, hash_key(TEST_KEY), SECRET_KEY, "s" * 20):
        assert secret not in written, f"{secret!r} is in the DEBUG log"
