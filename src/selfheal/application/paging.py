"""Keyset pages and the cursor both APIs share (a row id as ASCII digits)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from selfheal.errors import BadRequestError

T = TypeVar("T")

# row ids are 64-bit signed integers in both databases; past that a query cannot run
MAX_ID = 2**63 - 1
CURSOR_PATTERN = r"[0-9]{1,19}"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list: the items, each item's own cursor, and the next page's."""

    data: list[T]
    cursors: list[str] = field(default_factory=list)
    next_cursor: str | None = None


def page_of(data: list[T], ids: list[int], limit: int) -> Page[T]:
    """A page of ``data`` whose rows have ``ids``; full pages point at the next one."""
    cursors = [str(i) for i in ids]
    return Page(data=data, cursors=cursors, next_cursor=cursors[-1] if len(ids) == limit else None)


def parse_cursor(cursor: str | None) -> int | None:
    """The row id a cursor stands for; a clear 400 for anything else."""
    if cursor is None:
        return None
    # ASCII digits only: "\u00b2".isdigit() is true and int() refuses it
    if not re.fullmatch(CURSOR_PATTERN, cursor) or int(cursor) > MAX_ID:
        raise BadRequestError(
            "cursor must be the next_cursor of a previous page (ASCII digits, at most "
            f"{MAX_ID}); leave it out for the first page"
        )
    return int(cursor)
