"""Incidents become decisions: candidate fixes, ranked, filtered by policy."""

from __future__ import annotations
