"""Flap detection: a service changing between healthy and unhealthy too often.

Restarting a flapping service all night is how automation makes an outage
worse; a flapping service gets one ``flapping`` incident for people instead.
Only changes are recorded (a bounded deque of times), so steady services cost
nothing here.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass(slots=True)
class FlapTracker:
    """Times of one service's recent health changes."""

    changes: deque[float] = field(default_factory=lambda: deque(maxlen=64))
    flapping: bool = False

    def record_change(self, at: float, *, threshold: int, window: float) -> bool:
        """Count one change; True when the service has just started flapping."""
        self.changes.append(at)
        if self.flapping:
            return False
        recent = sum(1 for t in self.changes if at - t <= window)
        if recent >= threshold:
            self.flapping = True
            return True
        return False

    def settled(self, now: float, *, window: float) -> bool:
        """True when a flapping service has not changed for a whole window (and reset)."""
        if self.flapping and (not self.changes or now - self.changes[-1] >= window):
            self.flapping = False
            self.changes.clear()
            return True
        return False
