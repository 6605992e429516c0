"""``selfheal export``, ``import`` and ``backup``: the store's contents out, in, and copied.

Each works on the database ``DATABASE_URL`` names (the agent's own), so the
same environment that runs ``serve`` runs these. ``cli/main.py`` registers
them; they import its helpers when they run, since main imports this module.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from selfheal.config import Settings
from selfheal.errors import SelfhealError
from selfheal.storage.db import Database, sqlite_path
from selfheal.storage.transfer import TransferReport, export_to, import_from

_DAYS = re.compile(r"^(\d+)d$")


def _fail(message: str) -> None:
    from selfheal.cli.main import _fail as fail

    fail(message)


def _settings() -> Settings:
    from selfheal.cli.main import build_settings

    return build_settings()


def parse_since(value: str) -> datetime:
    """``30d`` (days back from now), or an ISO 8601 date or time (UTC unless it says)."""
    if match := _DAYS.match(value.strip()):
        return datetime.now(UTC) - timedelta(days=int(match.group(1)))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither a number of days (30d) nor an ISO date (2026-11-01)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("export")
@click.option("--since", help="Only history from then: 30d, or an ISO date such as 2026-11-01.")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export_command(since: str | None, path: Path) -> None:
    """Write services (without secrets), incidents, actions, timelines and learning to PATH
    as JSON Lines; `selfheal import` reads it into an empty SQLite or PostgreSQL store."""
    settings = _settings()
    moment = parse_since(since) if since else None

    async def run() -> TransferReport:
        db = Database(settings.DATABASE_URL)
        try:
            with path.open("w", encoding="utf-8") as out:
                return await export_to(db, out, since=moment)
        finally:
            await db.close()

    began = time.perf_counter()
    try:
        report = asyncio.run(run())
    except (SelfhealError, OSError) as exc:
        _fail(f"export to {path} failed: {getattr(exc, 'message', exc)}")
        return
    took = time.perf_counter() - began
    click.echo(f"{path}: {report.total} rows in {took:.1f}s ({report.describe()})", err=True)


@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(path: Path) -> None:
    """Read an export into the (empty) database DATABASE_URL names; a database that already
    holds data is refused, so nothing is mixed or overwritten."""
    settings = _settings()

    async def run() -> TransferReport:
        db = Database(settings.DATABASE_URL)
        try:
            return await import_from(db, path)
        finally:
            await db.close()

    began = time.perf_counter()
    try:
        report = asyncio.run(run())
    except SelfhealError as exc:
        _fail(f"import of {path} failed: {exc.message}")
        return
    took = time.perf_counter() - began
    click.echo(f"{path}: {report.total} rows imported in {took:.1f}s ({report.describe()})")
    click.echo(
        "Webhook secrets are not exported: set them again (config file or "
        "POST /api/services/register), and create API keys with `selfheal keys create`.",
        err=True,
    )


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup_command(path: Path) -> None:
    """Copy the running agent's SQLite store to PATH, consistently and compacted
    (VACUUM INTO: one read transaction, the agent keeps writing meanwhile)."""
    settings = _settings()
    source = sqlite_path(settings.DATABASE_URL)
    if source is None:
        _fail(
            "selfheal backup copies a SQLite store; DATABASE_URL points at PostgreSQL: "
            "back it up with pg_dump (see docs/operations.md), or use `selfheal export`"
        )
        return
    if not source.exists():
        _fail(f"no SQLite store at {source} (DATABASE_URL); nothing to back up")
    if path.exists():
        _fail(f"{path} exists; a backup never overwrites a file: choose a new name")
    began = time.perf_counter()
    try:
        copy_sqlite(source, path)
    except sqlite3.Error as exc:
        _fail(f"backup of {source} to {path} failed: {exc}")
    took = time.perf_counter() - began
    click.echo(f"{path}: {path.stat().st_size} bytes from {source} in {took:.1f}s")


def copy_sqlite(source: Path, target: Path) -> None:
    """A consistent, compact copy of a live SQLite database, checked before it counts."""
    conn = sqlite3.connect(source, timeout=30)
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()
    copy = sqlite3.connect(target)
    try:
        verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        copy.close()
    if verdict != "ok":
        target.unlink(missing_ok=True)
        raise sqlite3.DatabaseError(f"the copy failed its integrity check: {verdict}")
