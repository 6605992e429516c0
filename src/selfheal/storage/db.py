"""Engine, sessions and migrations for the one database URL the agent is given."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from selfheal.errors import StorageError

MIGRATIONS = Path(__file__).with_name("migrations")
ANALYSIS_LIMIT = 2000  # rows SQLite's ANALYZE samples per index
# PostgreSQL: enough pooled connections for 16 API clients plus the agent's own
# writers, so steady load reuses connections instead of opening overflow ones
PG_POOL_SIZE = 24
PG_MAX_OVERFLOW = 16


class Database:
    """Owns the engine and the session factory; started and stopped by the runtime."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # parameters are values (key hashes, secrets): never in logs or error messages
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            _ensure_sqlite_dir(url)
            # one connection at a time keeps SQLite's single writer happy under asyncio
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 4
            kwargs["pool_timeout"] = 30
        else:
            kwargs.update(
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_MAX_OVERFLOW,
                # no pre-ping (a round trip on every checkout, 6 % of GET /status):
                # a dropped connection fails its one statement as StorageError
                # (503), and SQLAlchemy then invalidates every older pooled
                # connection, so the next checkouts reconnect
                pool_pre_ping=False,
                pool_recycle=1800,
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on success, rolled back on error."""
        try:
            async with self.sessions() as session, session.begin():
                yield session
        except Exception as exc:
            if _is_unavailable(exc):
                raise StorageError(f"database unavailable: {_describe(exc)}") from exc
            raise

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        try:
            async with self.engine.begin() as conn:
                await conn.run_sync(_upgrade)
        except OSError as exc:
            raise StorageError(f"cannot reach the database: {exc}") from exc
        with contextlib.suppress(StorageError):
            # statistics only speed queries up; the agent's hourly run retries
            await self.analyze()

    async def analyze(self) -> None:
        """Refresh the query planner's statistics (SQLite; PostgreSQL's autovacuum does it).

        Without ``sqlite_stat1`` SQLite picks among indexes by their order in the
        schema and may scan a whole table; ``analysis_limit`` samples each index
        so this stays a few milliseconds however large the tables grow.
        """
        if not self.is_sqlite:
            return
        try:
            async with self.engine.begin() as conn:
                await conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
                await conn.exec_driver_sql("ANALYZE")
        except Exception as exc:
            if _is_unavailable(exc):  # locked or unreachable: the next run retries
                raise StorageError(f"database unavailable: {_describe(exc)}") from exc
            raise

    async def close(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _is_unavailable(exc: BaseException) -> bool:
    """True for errors meaning "the database cannot be reached", not "the query is wrong"."""
    if isinstance(exc, OSError | TimeoutError | OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        return _is_unavailable(exc.orig) if isinstance(exc.orig, BaseException) else False
    # asyncpg's own connection errors, without importing asyncpg on SQLite installs
    name = type(exc).__name__
    return name in {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "InterfaceError",
        "InternalClientError",
    }


def _describe(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return type(orig if isinstance(orig, BaseException) else exc).__name__


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) proceed while the agent writes
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
