"""After an action: re-probe until the service is healthy or a deadline passes."""

from __future__ import annotations
