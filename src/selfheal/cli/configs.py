"""``selfheal config export|apply``: a tenant as a config file, and back.

Both work on the database ``DATABASE_URL`` names. ``apply`` checks service URLs
against the outbound policy of the agent's own config file (``SELFHEAL_CONFIG``),
as the agent would; running agents pick the changes up like any other change
made on another replica (tenant settings within seconds, services on reconcile
or restart).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from selfheal.errors import SelfhealError


@click.group("config")
def config_group() -> None:
    """Export a tenant as a config file, or apply a config file to the database."""


def _fail(message: str) -> None:
    from selfheal.cli.main import _fail as fail

    fail(message)


def _run(work: Any) -> Any:
    from selfheal.cli.main import build_settings
    from selfheal.crypto import SecretBox
    from selfheal.storage.db import Database

    settings = build_settings()

    async def go() -> Any:
        db = Database(settings.DATABASE_URL)
        try:
            await db.migrate()
            return await work(db, SecretBox(settings.secret_key()), settings)
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except SelfhealError as exc:
        _fail(exc.message)


@config_group.command("export")
@click.option("--tenant", default="default", show_default=True, help="The tenant to export.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output.",
)
def export_config(tenant: str, output: Path | None) -> None:
    """Write the tenant's services, policies, quotas, catalog, channels and silences
    as YAML; secrets are ${VARIABLE} references listed in the header."""
    from selfheal.errors import NotFoundError
    from selfheal.runtime.tenant_config import export_tenant
    from selfheal.storage.tables import Tenant

    async def work(db: Any, box: Any, _settings: Any) -> str:
        async with db.session() as session:
            if await session.get(Tenant, tenant) is None:
                raise NotFoundError(f"no tenant {tenant!r} (see `selfheal tenants list`)")
        return str((await export_tenant(db, box, tenant)).yaml(tenant))

    text = _run(work)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"tenant {tenant} written to {output}", err=True)


@config_group.command("apply")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def apply_config_file(path: Path) -> None:
    """Store a config file's services, tenant policies and quotas, catalog, channels
    and silences in the database (each in the tenant it names); nothing is removed."""
    from selfheal.cli.main import load_file_config
    from selfheal.configfile import load_config_file
    from selfheal.errors import ConfigError
    from selfheal.outbound import OutboundPolicies
    from selfheal.runtime.tenant_config import apply_config

    try:
        config = load_config_file(path)
    except ConfigError as exc:
        _fail(exc.message)
        return

    async def work(db: Any, box: Any, settings: Any) -> dict[str, int]:
        agent_config = load_file_config(settings)
        outbound = OutboundPolicies(
            allow=settings.OUTBOUND_ALLOW,
            deny=settings.OUTBOUND_DENY,
            tenant_allow={t: c.outbound_allow for t, c in agent_config.tenants.items()},
        )
        return (await apply_config(db, box, outbound, config)).counts

    counts = _run(work)
    done = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "nothing"
    click.echo(f"applied {path}: {done}")
