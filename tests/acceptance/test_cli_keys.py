"""`selfheal keys` and `selfheal tenants` against the database a running agent uses."""

from __future__ import annotations

import asyncio
from typing import Any

from click.testing import CliRunner, Result

from selfheal.cli.main import cli
from selfheal.storage.repositories.tenants import hash_key
from selfheal.testing import AgentServer
from tests.conftest import api_client
from tests.helpers import wait_for

# the agent reloads keys every KEY_RELOAD_INTERVAL (2 s): a change shows within 5 s
WITHIN = 5.0


async def _cli(args: list[str], database_url: str) -> Result:
    """The CLI runs its own event loop: off this test's loop, in a thread."""
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "x" * 32}
    return await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)


async def _ok(args: list[str], database_url: str) -> str:
    result = await _cli(args, database_url)
    assert result.exit_code == 0, result.output
    return result.stdout


async def _status_becomes(server: AgentServer, key: str, status: int) -> None:
    client = api_client(server.url, key)

    async def reached() -> bool:
        return (await client.get("/api/services")).status_code == status

    try:
        await wait_for(reached, WITHIN, interval=0.05)
    finally:
        await client.aclose()


async def test_keys_and_tenants_are_administered_from_the_cli(
    database_url: str, make_settings: Any
) -> None:
    # polling with keys not yet valid (or no longer) must not be throttled into 429s
    settings = make_settings(database_url, AUTH_FAILURES_PER_MINUTE=100_000)
    async with AgentServer(settings) as server:
        url = database_url
        assert "team-c exists" in await _ok(["tenants", "create", "team-c"], url)
        created = await _ok(
            ["keys", "create", "--tenant", "team-c", "--scope", "read", "--name", "ci"], url
        )
        key = created.strip()
        await _status_becomes(server, key, 200)
        reader = api_client(server.url, key)
        answer = await reader.post("/api/silences", json={})
        assert answer.status_code == 403
        await reader.aclose()
        listing = await _ok(["keys", "list", "--tenant", "team-c"], url)
        assert key not in listing
        assert hash_key(key) not in listing
        row = next(line.split() for line in listing.splitlines() if line.endswith(" ci"))
        key_id, scope = row[0], row[1]
        assert scope == "read"

        # rotation without overlap: the new key now, the old one refused
        rotated = (
            await _ok(["keys", "rotate", key_id, "--tenant", "team-c", "--overlap", "0"], url)
        ).strip()
        await _status_becomes(server, rotated, 200)
        await _status_becomes(server, key, 401)

        tenants = await _ok(["tenants", "list"], url)
        assert any(line.startswith("team-c ") for line in tenants.splitlines())

        # a disabled tenant's keys are refused; enabled again, they work
        await _ok(["tenants", "disable", "team-c"], url)
        await _status_becomes(server, rotated, 401)
        await _ok(["tenants", "enable", "team-c"], url)
        await _status_becomes(server, rotated, 200)

        listing = await _ok(["keys", "list", "--tenant", "team-c"], url)
        new_id = max(int(line.split()[0]) for line in listing.splitlines()[1:])
        assert "revoked key" in await _ok(
            ["keys", "revoke", str(new_id), "--tenant", "team-c"], url
        )
        await _status_becomes(server, rotated, 401)

        # another tenant's key is not found from this tenant
        denied = await _cli(["keys", "revoke", key_id, "--tenant", "default"], url)
        assert denied.exit_code == 2
        assert "no key" in denied.output
        # the flags `keys create` always had still work: an admin key of the default tenant
        plain = (await _ok(["keys", "create"], url)).strip()
        await _status_becomes(server, plain, 200)
        admin = api_client(server.url, plain)
        assert (await admin.get("/api/keys")).status_code == 200
        await admin.aclose()


async def test_bad_cli_input_is_explained(sqlite_url: str) -> None:
    past = await _cli(["keys", "create", "--expires", "2001-01-01T00:00Z"], sqlite_url)
    assert past.exit_code == 2
    assert "in the past" in past.output
    nonsense = await _cli(["keys", "create", "--expires", "soon"], sqlite_url)
    assert nonsense.exit_code == 2
    assert "neither a duration" in nonsense.output
    scope = await _cli(["keys", "create", "--scope", "root"], sqlite_url)
    assert scope.exit_code == 2
    assert "read" in scope.output
    missing = await _cli(["tenants", "disable", "nobody"], sqlite_url)
    assert missing.exit_code == 2
    assert "no tenant 'nobody'" in missing.output
    expiring = await _ok(["keys", "create", "--expires", "30d", "--name", "temp"], sqlite_url)
    assert expiring.strip().startswith("sh_")
    listing = await _ok(["keys", "list"], sqlite_url)
    temp = next(line for line in listing.splitlines() if line.endswith(" temp"))
    assert temp.split()[4] != "-"  # the expiry is shown
