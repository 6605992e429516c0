"""``selfheal keys`` and ``selfheal tenants``: administer keys and tenants.

Each works on the database ``DATABASE_URL`` names (the agent's own); running agents
pick changes up at their next key reload (a few seconds). ``cli/main.py`` registers
the groups; its helpers are imported when a command runs, since main imports this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from selfheal.auth import SCOPES, new_key
from selfheal.configfile import parse_duration
from selfheal.errors import SelfhealError
from selfheal.storage.repositories import tenants as tenants_repo

T = TypeVar("T")


def _fail(message: str) -> None:
    from selfheal.cli.main import _fail as fail

    fail(message)


def _run(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on the agent's database (migrated first)."""
    from selfheal.cli.main import build_settings
    from selfheal.storage.db import Database

    settings = build_settings()

    async def go() -> T:
        db = Database(settings.DATABASE_URL)
        try:
            await db.migrate()
            async with db.session() as session:
                return await work(session)
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except SelfhealError as exc:
        _fail(exc.message)
        raise  # unreachable: _fail exits


def parse_expiry(value: str | None) -> datetime | None:
    """``30d``, ``12h``, ``3600`` (from now) or an ISO 8601 time (UTC unless it says)."""
    if value is None:
        return None
    try:
        return datetime.now(UTC) + timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a duration (30d, 12h) nor an ISO time (2030-01-31T12:00Z)"
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= datetime.now(UTC):
        raise click.BadParameter(f"{value!r} is in the past; give a time to come")
    return when


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


_TENANT = click.option(
    "--tenant", default="default", show_default=True, help="Tenant the key belongs to."
)


@click.group()
def keys() -> None:
    """Manage API keys (each belongs to a tenant and has a scope)."""


@keys.command("create")
@_TENANT
@click.option("--name", default="cli", show_default=True, help="A name for the audit log.")
@click.option(
    "--scope",
    type=click.Choice(SCOPES),
    default="admin",
    show_default=True,
    help="read: look; write: also change; admin: also administer keys.",
)
@click.option("--expires", help="When it stops working: 30d, 12h, or an ISO time. Default never.")
def keys_create(tenant: str, name: str, scope: str, expires: str | None) -> None:
    """Create a key for a tenant and print it (it is stored only as a hash)."""
    expires_at = parse_expiry(expires)
    key = new_key()

    async def work(session: AsyncSession) -> None:
        await tenants_repo.add_api_key(
            session=session,
            tenant_id=tenant,
            key=key,
            name=name,
            scope=scope,
            expires_at=expires_at,
        )

    _run(work)
    click.echo(key)


@keys.command("list")
@_TENANT
def keys_list(tenant: str) -> None:
    """The tenant's keys: id, scope, source, created, expires, last used (to the
    minute), name; never the key."""

    async def work(session: AsyncSession) -> list[tenants_repo.KeyInfo]:
        return await tenants_repo.list_keys(session=session, tenant_id=tenant)

    click.echo(
        f"{'ID':>6}  {'SCOPE':<6}  {'SOURCE':<6}  {'CREATED':<20}  {'EXPIRES':<20}  "
        f"{'LAST USED':<20}  NAME"
    )
    for k in _run(work):
        click.echo(
            f"{k.id:>6}  {k.scope:<6}  {k.source:<6}  {_when(k.created_at):<20}  "
            f"{_when(k.expires_at):<20}  {_when(k.last_used_at):<20}  {k.name}"
        )


@keys.command("revoke")
@click.argument("key_id", type=click.IntRange(1))
@_TENANT
def keys_revoke(key_id: int, tenant: str) -> None:
    """Revoke a key (running agents refuse it within a few seconds)."""

    async def work(session: AsyncSession) -> tenants_repo.KeyInfo:
        return await tenants_repo.revoke_key(session=session, tenant_id=tenant, key_id=key_id)

    info = _run(work)
    click.echo(f"revoked key {info.id} ({info.name})")


@keys.command("rotate")
@click.argument("key_id", type=click.IntRange(1))
@_TENANT
@click.option(
    "--overlap",
    default="1h",
    show_default=True,
    help="How long the old key keeps working (10m, 1h, 0 for not at all).",
)
def keys_rotate(key_id: int, tenant: str, overlap: str) -> None:
    """Print a new key of the same name and scope; the old one ends after --overlap."""
    try:
        seconds = parse_duration(overlap)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--overlap") from None
    key = new_key()

    async def work(session: AsyncSession) -> tenants_repo.KeyInfo:
        old, _new = await tenants_repo.rotate_key(
            session=session,
            tenant_id=tenant,
            key_id=key_id,
            new_key=key,
            overlap=timedelta(seconds=seconds),
        )
        return old

    old = _run(work)
    click.echo(key)
    click.echo(f"key {old.id} keeps working until {_when(old.expires_at)}", err=True)


@click.group()
def tenants() -> None:
    """Manage tenants (each owns its services, incidents and keys)."""


@tenants.command("list")
def tenants_list() -> None:
    """Every tenant with its number of keys and whether it is disabled."""

    async def work(session: AsyncSession) -> list[tenants_repo.TenantInfo]:
        return await tenants_repo.list_tenants(session=session)

    click.echo(f"{'TENANT':<24}  {'KEYS':>4}  {'CREATED':<20}  {'DISABLED':<20}  NAME")
    for t in _run(work):
        click.echo(
            f"{t.id:<24}  {t.keys:>4}  {_when(t.created_at):<20}  "
            f"{_when(t.disabled_at):<20}  {t.name}"
        )


@tenants.command("create")
@click.argument("tenant_id")
@click.option("--name", help="A display name (default: the id).")
def tenants_create(tenant_id: str, name: str | None) -> None:
    """Create a tenant (then give it a key with `selfheal keys create --tenant`)."""
    if not 1 <= len(tenant_id) <= 64 or not tenant_id.isprintable():
        raise click.BadParameter("a tenant id is 1 to 64 printable characters")

    async def work(session: AsyncSession) -> None:
        await tenants_repo.ensure_tenant(session=session, tenant_id=tenant_id, name=name)

    _run(work)
    click.echo(f"tenant {tenant_id} exists")


@tenants.command("disable")
@click.argument("tenant_id")
def tenants_disable(tenant_id: str) -> None:
    """Refuse every key of the tenant (its data stays; `tenants enable` undoes it)."""

    async def work(session: AsyncSession) -> None:
        await tenants_repo.set_tenant_disabled(session=session, tenant_id=tenant_id, disabled=True)

    _run(work)
    click.echo(f"tenant {tenant_id} disabled: its keys are refused within a few seconds")


@tenants.command("enable")
@click.argument("tenant_id")
def tenants_enable(tenant_id: str) -> None:
    """Accept the tenant's keys again."""

    async def work(session: AsyncSession) -> None:
        await tenants_repo.set_tenant_disabled(session=session, tenant_id=tenant_id, disabled=False)

    _run(work)
    click.echo(f"tenant {tenant_id} enabled")
