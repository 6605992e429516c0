"""``selfheal demo``: the agent with a bundled fleet of services that break on cue."""

from __future__ import annotations
