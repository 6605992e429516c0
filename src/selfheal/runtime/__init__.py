"""The wiring layer: the only place that knows every stage, and the supervisor of their loops."""

from __future__ import annotations

from selfheal.runtime.agent import Agent

__all__ = ["Agent"]
