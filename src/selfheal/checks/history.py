"""A service's recent probes, kept compactly: one flat array of floats, no objects.

Thousands of services times dozens of probes must neither cost memory nor
give the garbage collector millions of objects to walk, so the history holds
``(at, response_ms, ok)`` triples in an ``array('d')`` ring, not Samples.
"""

from __future__ import annotations

from array import array

from selfheal.checks.sample import Sample

HISTORY_SIZE = 30


class History:
    """The last ``size`` probes of one service."""

    __slots__ = ("_count", "_data", "_size")

    def __init__(self, size: int = HISTORY_SIZE) -> None:
        self._size = size
        self._data = array("d", bytes(8 * 3 * size))
        self._count = 0

    def append(self, sample: Sample) -> None:
        """Remember one probe (overwrites the oldest when full)."""
        base = 3 * (self._count % self._size)
        data = self._data
        data[base] = sample.at
        data[base + 1] = sample.response_ms
        data[base + 2] = 1.0 if sample.ok else 0.0
        self._count += 1

    def points(self) -> list[tuple[float, float, bool]]:
        """``(at, response_ms, ok)`` oldest first."""
        n = min(self._count, self._size)
        start = self._count - n
        data = self._data
        out = []
        for i in range(start, self._count):
            base = 3 * (i % self._size)
            out.append((data[base], data[base + 1], data[base + 2] == 1.0))
        return out

    def __len__(self) -> int:
        return min(self._count, self._size)
