"""Size-capped rotating log files for what supervised processes print.

``name.log`` is written until the next chunk would pass ``max_bytes``; then it
becomes ``name.log.1`` (older ones shift up to ``name.log.N``, the oldest is
dropped) and a fresh ``name.log`` starts. A chunk is never split, so one
file may pass the cap by at most one chunk (64 KiB).
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO


class RotatingLog:
    """One output stream of one process, appended to and rotated by size."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self._max = max_bytes
        self._backups = backups
        self._file: BinaryIO | None = None
        self._size = 0

    def write(self, chunk: bytes) -> None:
        """Append a chunk (rotating first if it would not fit), and flush it."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
            self._size = self._file.tell()
        if self._size and self._size + len(chunk) > self._max:
            self._rotate()
        assert self._file is not None
        self._file.write(chunk)
        self._file.flush()  # so `tail -f` and the API see it now
        self._size += len(chunk)

    def close(self) -> None:
        """Close the file (it is reopened by the next write)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self.close()
        if self._backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self._backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("ab")
        self._size = 0
