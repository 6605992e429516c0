"""Quorum before "down": a service with ``confirm_from: N`` opens an incident only when
N - 1 other replicas probe it too and agree (multi-location confirmation).

The replica that owns the service confirms a symptom as usual; before the incident
opens it asks the next N - 1 live members in the service's rendezvous order (the
ones that would own it next) through the shared-state channel: ``{"k": "probe",
"r": request id, "to": member, "y": incident type}``. Each probes the service at
once and answers ``{"k": "probed", "r": ..., "to": asker, "down": bool}``: down
when its own probe still shows the incident's symptom (the verifier's
``is_recovered`` read the other way).

- All asked agree: the incident opens.
- Any says the service is fine: no incident; the symptom is forgotten, so the
  owner's next failed probes confirm it again and ask again.
- Fewer live peers than needed, or no answer within the probe timeout plus 2 s
  (a peer died): the incident opens, and its timeline says it was not confirmed.
  Missing a real outage is worse than a lone vantage point's false alarm.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from selfheal.checks.sample import Sample
from selfheal.cluster.ownership import weight
from selfheal.logging import get_logger
from selfheal.services import ServiceSpec
from selfheal.types import IncidentType, ServiceKey
from selfheal.verification.verifier import is_recovered

log = get_logger(__name__)

ANSWER_MARGIN = 2.0  # seconds past the probe timeout an answer may take


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the other replicas said: open or not, and why."""

    open: bool
    confirmed_by: int
    reason: str


class Quorum:
    """Asks peers to confirm a symptom, and answers their requests."""

    def __init__(
        self,
        *,
        me: str,
        members: Callable[[], Sequence[str]],
        send: Callable[[dict[str, Any]], bool],
        spec_of: Callable[[ServiceKey], ServiceSpec | None],
        probe: Callable[[ServiceSpec], Awaitable[Sample]],
    ) -> None:
        self._me = me
        self._members = members
        self._send = send
        self._spec_of = spec_of
        self._probe = probe
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[bool]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def peers(self, key: ServiceKey, needed: int) -> list[str]:
        """The ``needed`` other live members next in the service's rendezvous order."""
        others = [m for m in self._members() if m != self._me]
        others.sort(key=lambda m: (weight(m, key), m), reverse=True)
        return others[:needed]

    async def confirm(self, spec: ServiceSpec, kind: IncidentType) -> Verdict:
        """Ask ``confirm_from - 1`` peers whether they see the symptom too."""
        needed = spec.confirm_from - 1
        peers = self.peers(spec.key, needed)
        if len(peers) < needed:
            return Verdict(True, len(peers), f"not confirmed: {len(peers)} of {needed} peers live")
        futures: list[asyncio.Future[bool]] = []
        loop = asyncio.get_running_loop()
        for peer in peers:
            request = f"{self._me}:{next(self._ids)}"
            future: asyncio.Future[bool] = loop.create_future()
            self._waiting[request] = future
            futures.append(future)
            message = {"k": "probe", "r": request, "to": peer, "from": self._me}
            self._send(message | {"t": spec.tenant_id, "s": spec.service_id, "y": kind.value})
        try:
            done, _ = await asyncio.wait(futures, timeout=spec.timeout + ANSWER_MARGIN)
        finally:
            for request in [r for r, f in self._waiting.items() if f in futures]:
                del self._waiting[request]
        answers = [f.result() for f in done]
        if not all(answers):
            return Verdict(False, sum(answers), "another replica finds the service healthy")
        if len(answers) < needed:
            return Verdict(
                True, len(answers), f"not confirmed: {len(answers)} of {needed} answered"
            )
        return Verdict(True, len(answers), f"confirmed by {len(answers)} other replica(s)")

    def on_message(self, message: dict[str, Any]) -> None:
        """A request to probe (answered from a task) or an answer to one of ours."""
        if message.get("to") != self._me:
            return
        if message.get("k") == "probed":
            future = self._waiting.get(str(message.get("r")))
            if future is not None and not future.done():
                future.set_result(bool(message.get("down")))
        elif message.get("k") == "probe":
            task = asyncio.create_task(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: dict[str, Any]) -> None:
        spec = self._spec_of(ServiceKey(str(message["t"]), str(message["s"])))
        if spec is None:
            return  # not known here (yet): the asker's timeout decides
        sample = await self._probe(spec)
        down = not is_recovered(sample, spec, IncidentType(str(message["y"])))
        reply = {"k": "probed", "r": message["r"], "to": message["from"], "down": down}
        self._send(reply)
