"""The selfheal SDK: a service joins the agent, reports its health and carries out fixes."""

from __future__ import annotations

from self_healing_sdk.signing import ReplayGuard, SignatureError, sign, verify

__all__ = ["ReplayGuard", "SignatureError", "sign", "verify"]
