"""Turning samples into symptoms: thresholds, hysteresis, the per-service monitor."""

from __future__ import annotations
