"""Symptoms become incidents: opened, deduplicated, moved through their states, closed."""

from __future__ import annotations
