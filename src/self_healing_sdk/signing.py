"""The webhook signature scheme shared by the agent and services, both ways.

Headers: ``X-SelfHeal-Timestamp`` (unix seconds), ``X-SelfHeal-Service`` (service
id) and ``X-SelfHeal-Signature: sha256=<hex>``, the hex being HMAC-SHA256 with
the service's secret over ``"{timestamp}.{raw body}"``. A receiver rejects a
wrong signature, a timestamp more than 300 s off, a wrong service id, and a
signature it has already accepted (replay).

Standard library only: services install the SDK without the agent's dependencies.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-SelfHeal-Timestamp"
SERVICE_HEADER = "X-SelfHeal-Service"
SIGNATURE_HEADER = "X-SelfHeal-Signature"
TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """A signed request did not verify; ``reason`` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` for one request."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def sign(
    secret: str, service_id: str, body: bytes, *, timestamp: int | None = None
) -> dict[str, str]:
    """The three headers that sign ``body`` for ``service_id``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        TIMESTAMP_HEADER: ts,
        SERVICE_HEADER: service_id,
        SIGNATURE_HEADER: signature(secret, ts, body),
    }


class ReplayGuard:
    """Remembers accepted signatures for the tolerance window (bounded, thread-safe)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def check_and_remember(self, sig: str, now: float) -> bool:
        """True if ``sig`` is new (and remember it); False if it was seen before."""
        with self._lock:
            horizon = now - 2 * TOLERANCE_SECONDS
            while self._seen and next(iter(self._seen.values())) < horizon:
                self._seen.popitem(last=False)
            if sig in self._seen:
                return False
            self._seen[sig] = now
            if len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return True


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    service_id: str,
    replay_guard: ReplayGuard | None = None,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Raise ``SignatureError`` unless the request is signed correctly, fresh and new."""
    ts = _header(headers, TIMESTAMP_HEADER)
    sent_service = _header(headers, SERVICE_HEADER)
    sig = _header(headers, SIGNATURE_HEADER)
    if not ts or not sig or sent_service is None:
        raise SignatureError("missing signature headers")
    if not hmac.compare_digest(sent_service.encode(), service_id.encode()):
        raise SignatureError("wrong service id")
    try:
        sent_at = int(ts)
    except ValueError:
        raise SignatureError("timestamp is not an integer") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance:
        raise SignatureError("timestamp outside the allowed window")
    if not hmac.compare_digest(sig.encode(), signature(secret, ts, body).encode()):
        raise SignatureError("signature mismatch")
    if replay_guard is not None and not replay_guard.check_and_remember(sig, current):
        raise SignatureError("replayed request")
