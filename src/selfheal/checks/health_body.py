"""Reading the optional health JSON of the contract without trusting it.

``{"status": "ok"|"degraded"|"down", "cpu": 0-100, "memory": 0-100,
"error_rate": 0-1, "latency_ms": n}``; unknown fields are kept as details, a
malformed body or a wrongly typed field is ignored, never a crash.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from selfheal.checks.sample import Sample

_KNOWN = frozenset({"status", "cpu", "memory", "error_rate", "latency_ms"})
_STATUSES = frozenset({"ok", "degraded", "down"})
MAX_BODY_BYTES = 65_536


def apply_health_body(sample: Sample, body: bytes) -> None:
    """Fill the sample's reported figures from a health body, if it is usable JSON."""
    if not body or body.lstrip()[:1] != b"{":
        return
    try:
        data = json.loads(body)
    except ValueError:
        sample.details = {"body_error": "health body is not valid JSON"}
        return
    if isinstance(data, dict):
        apply_health_data(sample, data)


def apply_health_data(sample: Sample, data: Mapping[str, Any]) -> None:
    """Fill the sample's reported figures from already parsed health fields."""
    status = data.get("status")
    if isinstance(status, str) and status.lower() in _STATUSES:
        sample.reported_status = status.lower()
    sample.cpu = _number(data.get("cpu"), 0.0, 100.0)
    sample.memory = _number(data.get("memory"), 0.0, 100.0)
    sample.error_rate = _number(data.get("error_rate"), 0.0, 1.0)
    sample.latency_ms = _number(data.get("latency_ms"), 0.0, math.inf)
    if len(data) > len(_KNOWN & data.keys()):
        sample.details = {k: v for k, v in data.items() if k not in _KNOWN}


def _number(value: Any, low: float, high: float) -> float | None:
    """A finite number within range, or None: a lying figure is not evidence."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < low or number > high:
        return None
    return number
