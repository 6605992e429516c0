"""Probing services: one probe result is a ``Sample``."""

from __future__ import annotations

from selfheal.checks.sample import Failure, Sample

__all__ = ["Failure", "Sample"]
