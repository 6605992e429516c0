"""The SDK's version (the same as the agent's: they are released together)."""

from __future__ import annotations

__version__ = "0.1.0"
