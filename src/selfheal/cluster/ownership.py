"""Which live member probes which service: rendezvous (highest random weight) hashing.

Every replica computes the owner from the same two inputs (the sorted list of
live members and the service key), so they agree without talking to each
other. When a member leaves, only its services move (each to the member with
the next-highest weight); when one joins, it takes about 1/n of each other
member's services. No table of assignments has to be written or locked.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import blake2b

from selfheal.types import ServiceKey


def weight(member_id: str, key: ServiceKey) -> int:
    """The member's random but stable weight for one service."""
    data = f"{member_id}\0{key.tenant_id}\0{key.service_id}".encode()
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def owner(members: Sequence[str], key: ServiceKey) -> str | None:
    """The member that probes ``key``: the one with the highest weight (None if no member)."""
    if not members:
        return None
    if len(members) == 1:
        return members[0]
    return max(members, key=lambda m: (weight(m, key), m))


class Ownership:
    """This replica's share of the fleet, given its current view of the live members."""

    def __init__(self, me: str) -> None:
        self.me = me
        # alone until the first membership read says otherwise: a single agent owns all
        self.members: tuple[str, ...] = (me,)

    def update(self, members: Sequence[str]) -> bool:
        """Take a new view of the live members (empty: fenced, owns nothing); True if changed."""
        view = tuple(sorted(members))
        if view == self.members:
            return False
        self.members = view
        return True

    def owns(self, key: ServiceKey) -> bool:
        """True if this replica is the one to probe ``key``."""
        return owner(self.members, key) == self.me
