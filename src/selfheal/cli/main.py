"""The ``selfheal`` command: a thin click group that builds settings and runs the agent."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from selfheal import __version__
from selfheal.auth import new_key
from selfheal.config import Settings, load_settings
from selfheal.configfile import FileConfig, load_config_file
from selfheal.errors import ConfigError, SelfhealError
from selfheal.logging import configure_logging
from selfheal.plugins import load_plugins, validate_config


def _fail(message: str) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


def build_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, with command-line overrides."""
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except ConfigError as exc:
        _fail(exc.message)
        raise  # unreachable; keeps type checkers content


def ensure_api_key(settings: Settings) -> tuple[Settings, str | None]:
    """Without API_KEYS, create one key once (kept in DATA_DIR) so the API is never open.

    Returns the settings with the key added and the key when it is a generated one
    (to show on the terminal, never in the logs).
    """
    if settings.API_KEYS:
        return settings, None
    path = settings.DATA_DIR / "api_key"
    if path.exists():
        key = path.read_text().strip()
    else:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        key = new_key()
        path.touch(mode=0o600)
        path.write_text(key + "\n")
    return settings.model_copy(update={"API_KEYS": [SecretStr(key)]}), key


def load_file_config(settings: Settings) -> FileConfig:
    """The config file named by --config or SELFHEAL_CONFIG, or an empty one; plugins
    that cannot load, or that refuse their options, stop the start here."""
    try:
        config = (
            FileConfig()
            if settings.SELFHEAL_CONFIG is None
            else load_config_file(settings.SELFHEAL_CONFIG)
        )
        validate_config(config, load_plugins())
        return config
    except ConfigError as exc:
        _fail(exc.message)
        raise


@click.group()
@click.version_option(__version__, prog_name="selfheal")
def cli() -> None:
    """selfheal keeps web services healthy on its own: it detects trouble, applies the
    fix most likely to work, verifies it, and learns from the outcome."""


@cli.command()
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML config file.")
@click.option("--host", help="Address to listen on (default HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default PORT or 5000).")
def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    """Run the agent: API, dashboard, monitor and executor in one process."""
    settings = build_settings(SELFHEAL_CONFIG=config_path, HOST=host, PORT=port)
    file_config = load_file_config(settings)
    configure_logging(level=settings.LOG_LEVEL, fmt=settings.log_format, log_file=settings.LOG_FILE)
    from selfheal.cli.server import check_database, check_port, run_server
    from selfheal.cluster.sqlite_lock import SqliteLock

    # the two usual mistakes, each one line and exit 2, before any banner
    # held until the process exits (the kernel drops it even on SIGKILL)
    sqlite_lock = SqliteLock(settings.DATABASE_URL)
    try:
        check_port(settings.HOST, settings.PORT)
        asyncio.run(check_database(settings))
        sqlite_lock.acquire()
    except ConfigError as exc:
        _fail(exc.message)
    settings, generated = ensure_api_key(settings)
    url = f"http://{settings.HOST}:{settings.PORT}"
    click.echo(f"selfheal {__version__} listening on {url}  (API docs: {url}/docs)", err=True)
    click.echo(f"dashboard: {url}/dashboard", err=True)
    if generated:
        click.echo(
            f"No API_KEYS set: using the key stored in {settings.DATA_DIR / 'api_key'}:\n"
            f"  {generated}",
            err=True,
        )
    try:
        code = asyncio.run(run_server(settings, file_config))
    except SelfhealError as exc:
        _fail(exc.message)
        return
    sys.exit(code)


@cli.command("check-config")
@click.argument("path", type=click.Path(path_type=Path))
def check_config(path: Path) -> None:
    """Validate a config file; exit 0 if it is valid, 2 with the line and field if not."""
    try:
        config = load_config_file(path)
        validate_config(config, load_plugins())  # plugin names and their options too
    except ConfigError as exc:
        _fail(exc.message)
        return
    click.echo(
        f"{path}: ok ({len(config.services)} services, {len(config.catalog)} catalog entries, "
        f"{len(config.notifications)} notification channels)"
    )


@cli.group()
def anomaly() -> None:
    """The streaming anomaly detector, offline."""


@anomaly.command("score")
@click.argument("in_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out_path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def anomaly_score(in_path: Path, out_path: Path) -> None:
    """Score IN.csv (timestamp,value: NAB's format) into OUT.csv with an anomaly_score column.

    Each row is scored from the rows before it only, exactly as the agent scores a
    metric live; 0.5 is the detector's own alert level.
    """
    from selfheal.learning.anomaly import score_csv

    try:
        rows = score_csv(in_path, out_path)
    except (ValueError, OSError) as exc:
        _fail(f"{in_path}: {exc}")
        return
    click.echo(f"{out_path}: {rows} rows scored", err=True)


@cli.command()
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
@click.option("--tenant", default="default", show_default=True, help="Tenant to report on.")
def report(days: int, tenant: str) -> None:
    """Print a plain-text report: incidents, healing, what works, patterns."""
    settings = build_settings()

    async def build() -> str:
        from selfheal.learning.report import weekly_report
        from selfheal.storage.db import Database

        db = Database(settings.DATABASE_URL)
        try:
            await db.migrate()
            return await weekly_report(db, tenant_id=tenant, days=days)
        finally:
            await db.close()

    try:
        text = asyncio.run(build())
    except SelfhealError as exc:
        _fail(exc.message)
        return
    click.echo(text, nl=False)


@cli.command()
@click.option("--duration", type=float, help="Stop by itself after this many seconds.")
@click.option("--port", type=int, default=5000, show_default=True, help="Agent port.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Agent address.")
def demo(duration: float | None, port: int, host: str) -> None:
    """Run the agent with a small fleet of demo services that break in different ways."""
    from selfheal.cli.server import check_port
    from selfheal.demo.runner import run_demo

    try:
        check_port(host, port)
    except ConfigError as exc:
        _fail(exc.message)
    sys.exit(run_demo(duration=duration, host=host, port=port))


def _register_data_commands() -> None:
    from selfheal.cli import admin, configs, data

    for command in (data.export_command, data.import_command, data.backup_command):
        cli.add_command(command)
    cli.add_command(admin.keys)
    cli.add_command(admin.tenants)
    cli.add_command(configs.config_group)


_register_data_commands()


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
