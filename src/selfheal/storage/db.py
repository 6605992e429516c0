"""Engine, sessions and migrations for the one database URL the agent is given."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from selfheal.config import Settings
from selfheal.errors import StorageError
from selfheal.logging import get_logger

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x5E1F_4EA1  # the advisory lock key every selfheal migration takes
log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a database call may wait, in seconds, before it is "unavailable".

    Without them a black-holed PostgreSQL (packets dropped, nothing refused) holds
    each request until the kernel gives up on TCP, a minute or more. Each bound is
    short so their sum on one request (pool wait, connect, one statement) stays
    within the few seconds an API client waits for its 503.
    """

    connect: float = 2.0
    statement: float = 3.0
    pool: float = 2.0

    @property
    def ping(self) -> float:
        """The pool's check of an idle connection before reuse: a round trip that
        takes no work on the server, so a short wait is enough."""
        return min(1.0, self.connect)


def db_timeouts(settings: Settings) -> Timeouts:
    """The database waits the settings ask for."""
    return Timeouts(
        connect=settings.DB_CONNECT_TIMEOUT,
        statement=settings.DB_STATEMENT_TIMEOUT,
        pool=settings.DB_POOL_TIMEOUT,
    )


ANALYSIS_LIMIT = 2000  # rows SQLite's ANALYZE samples per index
# PostgreSQL: enough pooled connections for 16 API clients plus the agent's own
# writers, so steady load reuses connections instead of opening overflow ones
PG_POOL_SIZE = 24
PG_MAX_OVERFLOW = 16


class Database:
    """Owns the engine and the session factory; started and stopped by the runtime."""

    def __init__(self, url: str, *, echo: bool = False, timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.timeouts = timeouts or Timeouts()
        # parameters are values (key hashes, secrets): never in logs or error messages
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if self.is_sqlite:
            check_sqlite_path(url)
            # one connection at a time keeps SQLite's single writer happy under asyncio
            kwargs["pool_size"] = 1
            kwargs["max_overflow"] = 4
            kwargs["pool_timeout"] = 30
        else:
            t = self.timeouts
            kwargs.update(
                pool_size=PG_POOL_SIZE,
                max_overflow=PG_MAX_OVERFLOW,
                # no pre-ping (a round trip on every checkout, 6 % of GET /status):
                # a dropped connection fails its one statement as StorageError
                # (503), and SQLAlchemy then invalidates every older pooled
                # connection, so the next checkouts reconnect
                pool_pre_ping=False,
                pool_recycle=1800,
                pool_timeout=t.pool,
                connect_args={
                    "timeout": t.connect,  # TCP connect and the start-up handshake
                    "command_timeout": t.statement,  # client side: covers a silent server
                    # server side: a slow query is cancelled there too, not left running
                    "server_settings": {"statement_timeout": str(int(t.statement * 1000))},
                },
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            dialect = self.engine.sync_engine.dialect
            dialect.do_ping = _quick_ping(self.timeouts.ping)  # type: ignore[method-assign,assignment]
            event.listen(self.engine.sync_engine, "handle_error", _drop_timed_out)
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

    async def ping(self) -> None:
        """One round trip to the database; ``StorageError`` if it cannot be made."""
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        # on PostgreSQL a migration may rightly run longer than a request's statement
        # timeout (an index on a big table): its own connection has the connect bound only
        engine = self.engine
        if not self.is_sqlite:
            engine = create_async_engine(
                self.url, poolclass=NullPool, connect_args={"timeout": self.timeouts.connect}
            )
        try:
            async with engine.begin() as conn:
                if not self.is_sqlite:
                    # replicas starting together: one migrates, the others wait, then
                    # find nothing left to do (released when this transaction ends)
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                    )
                await conn.run_sync(_upgrade)
        except OSError as exc:
            raise StorageError(f"cannot reach the database: {exc}") from exc
        finally:
            if engine is not self.engine:
                await engine.dispose()
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


def _quick_ping(timeout: float) -> Callable[[Any], bool]:
    """The pool's pre-ping with its own short timeout.

    SQLAlchemy's ping waits as long as any statement; on a silent server that
    wait plus the reconnect that follows went past the 5 s an API client is
    promised. False here makes the pool drop every idle connection and connect
    anew (bounded by the connect timeout).
    """

    def ping(dbapi_connection: Any) -> bool:
        driver = dbapi_connection.driver_connection
        try:
            await_only(driver.fetchrow(";", timeout=timeout))
        except Exception as exc:
            if not _is_unavailable(exc):
                raise
            # closed at once: the pool's polite close waits 2 s more for a goodbye
            # that a silent server never acknowledges
            driver.terminate()
            return False
        return True

    return ping


def _drop_timed_out(context: ExceptionContext) -> None:
    """A statement that timed out leaves its connection mid-conversation: close it at
    once and have the pool drop the other idle ones (they reconnect on next use)."""
    if not isinstance(context.original_exception, TimeoutError | OSError):
        return
    connection = context.connection
    if connection is not None and not connection.invalidated:
        with suppress(Exception):
            connection.connection.driver_connection.terminate()  # type: ignore[union-attr]
    context.is_disconnect = True


# PostgreSQL's "try again": statement timeout or cancel (57014), lock wait timeout
# (55P03), deadlock (40P01), serialization failure (40001); busy or unlucky, not
# wrong, so the callers retry them as they retry an outage
_TRANSIENT_SQLSTATES = frozenset({"57014", "55P03", "40P01", "40001"})


def _is_unavailable(exc: BaseException) -> bool:
    """True for errors meaning "the database cannot be reached" (or did not answer in
    time), not "the query is wrong"."""
    if isinstance(exc, OSError | TimeoutError | OperationalError | InterfaceError):
        return True
    if getattr(exc, "sqlstate", None) in _TRANSIENT_SQLSTATES:
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
    if getattr(orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return "it did not answer in time (DB_STATEMENT_TIMEOUT, a lock wait or a deadlock)"
    return type(orig if isinstance(orig, BaseException) else exc).__name__


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    # Alembic's own INFO lines are silenced (selfheal.logging); a change is said here
    before = MigrationContext.configure(connection).get_current_revision()
    command.upgrade(alembic_config(connection), "head")
    after = MigrationContext.configure(connection).get_current_revision()
    if after != before:
        log.info("database_migrated", from_revision=before, to_revision=after)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (the API) proceed while the agent writes
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names; None for PostgreSQL, in-memory and ``file:`` URIs."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return Path(path).expanduser().resolve()


def check_sqlite_path(url: str) -> None:
    """Refuse a SQLite file whose folder does not exist, naming it.

    Creating the folder silently turned a typo (or ``/nonexistent/x.db``) into a
    fresh empty database somewhere unexpected; the CLI creates the default
    DATA_DIR itself before it gets here.
    """
    path = sqlite_path(url)
    if path is None:
        return
    if not path.parent.is_dir():
        raise StorageError(
            f"the folder of the SQLite database {str(path)!r} does not exist ({path.parent}); "
            f"create it, or point DATABASE_URL at an existing folder"
        )
