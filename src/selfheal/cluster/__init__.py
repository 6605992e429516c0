"""Replicas of ``selfheal serve`` on one PostgreSQL: membership, ownership, fleet changes.

See the "Cluster" section of ``docs/architecture.md`` for the design and its failure cases.
"""

from __future__ import annotations
