"""API keys: each belongs to a tenant; only their SHA-256 is held, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the tenant and the key's name (for the audit log)."""

    tenant_id: str
    key_name: str


class KeyStore:
    """The set of valid key hashes, refreshed from the database when keys change."""

    def __init__(self) -> None:
        self._keys: list[tuple[bytes, Principal]] = []

    def replace(self, hashes: dict[str, tuple[str, str]]) -> None:
        """Swap in ``{sha256 hex: (tenant id, key name)}``."""
        self._keys = [
            (bytes.fromhex(digest), Principal(tenant, name))
            for digest, (tenant, name) in hashes.items()
        ]

    def authenticate(self, key: str | None) -> Principal | None:
        """The principal of a presented key, or None.

        Every stored hash is compared with ``hmac.compare_digest`` and the loop
        does not stop early, so the time taken says nothing about which key or
        how much of it matched.
        """
        if not key:
            return None
        digest = hashlib.sha256(key.encode()).digest()
        found: Principal | None = None
        for stored, principal in self._keys:
            if hmac.compare_digest(stored, digest):
                found = principal
        return found

    def __len__(self) -> int:
        return len(self._keys)
