"""Executors carry a decided action out: signed webhook, local command, notification."""

from __future__ import annotations
