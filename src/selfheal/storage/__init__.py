"""Persistence over SQLAlchemy 2 async: SQLite by default, PostgreSQL in production."""

from __future__ import annotations
