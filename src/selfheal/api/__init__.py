"""The REST API, live feed and metrics endpoint (FastAPI)."""

from __future__ import annotations
