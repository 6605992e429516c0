"""One ``selfheal serve`` per SQLite file: an exclusive lock on a file next to it.

SQLite has one writer and no way for two agents to share the fleet, so a second
process on the same file would probe everything twice and run every fix twice.
The lock is ``flock`` on ``<database>.lock``: the kernel drops it when the
holder dies, SIGKILL included, so a crashed agent never blocks the next start.
"""

from __future__ import annotations

import fcntl
import os
from typing import IO

from selfheal.errors import ConfigError
from selfheal.storage.db import sqlite_path


class SqliteLock:
    """Held for the life of the process that serves one SQLite database."""

    def __init__(self, url: str) -> None:
        self.database = sqlite_path(url)
        self.path = self.database.with_name(self.database.name + ".lock") if self.database else None
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or ``ConfigError`` saying who holds it and what to do instead."""
        if self.path is None or self._file is not None:
            return
        handle = self.path.open("a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise ConfigError(
                f"another selfheal serve (pid {holder}) is already using the SQLite database "
                f"{self.database}: SQLite serves one process only. "
                "Use PostgreSQL for replicas: point every one at the same "
                "DATABASE_URL=postgresql+asyncpg://user:password@host/db"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle

    def release(self) -> None:
        """Let the next process in (the lock file itself stays; it is only a lock)."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
