"""API keys: each belongs to a tenant and has a scope; only their SHA-256 is held,
compared in constant time. A key past its expiry is refused at use.

Failed attempts are throttled per client address (``FailureThrottle``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from selfheal.logging import get_logger

log = get_logger(__name__)


# a key's last use is stored to this many seconds
USE_RESOLUTION = 60.0
# each scope allows what the ones before it allow
SCOPES = ("read", "write", "admin")


def new_key() -> str:
    """A fresh API key: 192 random bits, with a prefix that says what it is."""
    return "sh_" + secrets.token_urlsafe(24)


def allows(scope: str, needed: str) -> bool:
    """Whether a key of ``scope`` may do what needs ``needed``."""
    return SCOPES.index(scope) >= SCOPES.index(needed)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant, the key's name and id (for the audit log), its scope."""

    tenant_id: str
    key_name: str
    key_id: int = 0
    scope: str = "admin"


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One key as the database holds it: its hash, owner, scope and expiry."""

    key_hash: str
    principal: Principal
    expires_at: float | None = None  # unix time; None never expires


class KeyStore:
    """The set of valid key hashes, refreshed from the database when keys change."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._keys: list[tuple[bytes, Principal, float]] = []
        self._expiry: dict[int, float] = {}  # key id -> expiry, for still_valid
        self._used: dict[int, float] = {}  # key id -> last use, not yet stored
        self._stored_use: dict[int, float] = {}  # key id -> last use stored
        self._clock = clock

    def replace(self, keys: list[StoredKey]) -> None:
        """Swap in the given keys."""
        self._keys = [
            (
                bytes.fromhex(k.key_hash),
                k.principal,
                math.inf if k.expires_at is None else k.expires_at,
            )
            for k in keys
        ]
        self._expiry = {p.key_id: expires for _, p, expires in self._keys}

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal of a presented key, or None.

        Every stored hash is compared with ``hmac.compare_digest`` and the loop
        does not stop early, so the time taken says nothing about which key or
        how much of it matched.
        """
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        now = self._clock()
        found: Principal | None = None
        for stored, principal, expires in self._keys:
            # expiry is checked at use: an expired key is refused without a reload
            if hmac.compare_digest(stored, digest) and now < expires:
                found = principal
        if found is not None:
            self._used[found.key_id] = now
        return found

    def take_used(self, every: float = USE_RESOLUTION) -> dict[int, float]:
        """Last uses to store: each key at most once per ``every`` seconds, so that a
        busy key costs one write a minute, not one a request."""
        due = {
            key_id: at
            for key_id, at in self._used.items()
            if at - self._stored_use.get(key_id, -math.inf) >= every
        }
        self._used = {k: v for k, v in self._used.items() if k not in due}
        self._stored_use.update(due)
        return due

    def still_valid(self, principal: Principal) -> bool:
        """Whether the key behind ``principal`` is still held and unexpired (a live
        feed opened with it ends when it is revoked, expires or its tenant is disabled)."""
        return self._clock() < self._expiry.get(principal.key_id, -math.inf)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(slots=True)
class _Client:
    tokens: float
    updated: float
    throttled: bool = False
    unlogged: int = 0  # refusals since the last log line about this client
    logged_at: float = float("-inf")


class FailureThrottle:
    """Per-client budget of failed authentications: a token bucket per address.

    Each refusal (missing or wrong key) takes a token; ``per_minute`` tokens
    refill in a minute, up to ``per_minute`` at once. A client without a token
    is answered 429 with Retry-After instead of 401, until half its budget is
    back (about 30 s for a client that keeps going). Only refusals are
    throttled: a valid key is checked first and always works, from a
    throttled address too (a shared NAT address must not lock its honest users
    out; guessing a 192-bit key stays hopeless at any rate).

    Logging follows transitions: one line when a client starts failing (then at
    most one a minute with the count since), one when it is throttled and one
    when its budget is back; never the key. Addresses are bounded in number
    (least recently failing forgotten first).
    """

    def __init__(
        self,
        *,
        per_minute: int,
        max_clients: int = 10_000,
        log_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._lift_at = max(1.0, self.capacity / 2)
        self._clients: OrderedDict[str, _Client] = OrderedDict()
        self._max = max_clients
        self._log_every = log_every
        self._clock = clock

    def refuse(self, client: str, reason: str) -> float | None:
        """Record one refusal of ``client``; the seconds to wait if it is throttled."""
        now = self._clock()
        state = self._clients.pop(client, None)
        if state is None:
            state = _Client(tokens=self.capacity, updated=now)
        self._clients[client] = state  # most recent last
        if len(self._clients) > self._max:
            self._clients.popitem(last=False)
        state.tokens = min(self.capacity, state.tokens + (now - state.updated) * self.rate)
        state.updated = now
        state.unlogged += 1
        if state.throttled and state.tokens >= self._lift_at:
            state.throttled = False
            self._log(state, now, "auth_throttle_lifted", client, reason)
        if not state.throttled and state.tokens >= 1.0:
            state.tokens -= 1.0
            if now - state.logged_at >= self._log_every:
                self._log(state, now, "auth_failed", client, reason)
            return None
        # hysteresis: once throttled, a client waits for half its budget back, so a
        # steady flood is not let through (and logged) one token at a time
        wait = (self._lift_at - state.tokens) / self.rate
        if not state.throttled:
            state.throttled = True
            self._log(state, now, "auth_throttled", client, reason, retry_after=round(wait, 1))
        return wait

    def _log(
        self, state: _Client, now: float, event: str, client: str, reason: str, **kw: Any
    ) -> None:
        log.warning(event, client=client, reason=reason, refusals=state.unlogged, **kw)
        state.unlogged = 0
        state.logged_at = now
