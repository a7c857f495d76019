"""The owner's health check of one pack: how many of its shares are live and proven.

The owner holds no share, so it learns the share set from the holders: the
first descriptor that carries its own signature fixes the roots, and every
claim is then audited against them like a sibling would.

A holder that hangs (stopped, asleep, its link dead without a reset) keeps its
connection open and answers nothing. Each pack's survey waited out its whole
timeout for it, and a check of a few hundred packs took minutes where it takes
seconds. One check's or repair's `Patience` gives up on a request past a few
times what its answers took lately, and passes over a holder that hung for a
while (`SURVEY_STALL.remember`): its shares count as missing, as they are for
anyone reading now, and it costs the operation one stall a minute, not one per
pack.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import WireError
from p2pbackup.maintenance.audit import audit_claim, query_share
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.gathering import HolderMemory, Pace, StallRule
from p2pbackup.shares.pacing import within_pace
from p2pbackup.shares.upkeep_messages import ShareHeld

_T = TypeVar("_T")
# A query or an audit answer is small, but a holder's disk may be busy: a request is
# given up only after 2 s at least, and a holder that hung is asked again after a
# minute, when it may be back.
SURVEY_STALL = StallRule(floor=2.0, ceiling=30.0, remember=60.0)


@dataclass(frozen=True)
class PackHealth:
    pack_id: bytes
    live: int
    k: int
    n: int

    @property
    def recoverable(self) -> bool:
        return self.live >= self.k > 0

    @classmethod
    def of(cls, pack_id: bytes, survey: Survey | None) -> PackHealth:
        """What a survey found (None: no holder showed the owner's descriptor)."""
        if survey is None:
            return cls(pack_id, 0, 0, 0)
        return cls(pack_id, survey.live, survey.descriptor.k, survey.descriptor.n)


@dataclass
class Patience:
    """How long one check or repair waits for a holder, and the holders that hung in it."""

    rule: StallRule = SURVEY_STALL
    memory: HolderMemory = field(init=False)
    pace: Pace = field(init=False)
    # Every holder that hung in this operation, by node id: what its report names.
    hung: set[bytes] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.memory = HolderMemory(self.rule)
        self.pace = Pace(self.rule)

    def passed_over(self, dht: DhtNode, contact: Contact) -> bool:
        """Whether `contact` hung lately, in this operation or in any of its peer's
        requests (`DhtNode.silent`): not worth a wait; named in the report either way."""
        now = trio.current_time()
        if self.memory.suspect(contact.node_id, now):
            return True
        if dht.silent.silent(contact.node_id, now):
            self.hung.add(contact.node_id)
            return True
        return False

    async def ask(self, contact: Contact, request: Callable[[], Awaitable[_T]]) -> _T | None:
        """`request`'s answer, or None when it brought nothing within the stall interval
        (the holder is then remembered as hung, and passed over for a while)."""
        started = trio.current_time()

        async def boxed() -> tuple[_T]:
            return (await request(),)

        got = await within_pace(self.pace, started, boxed)
        now = trio.current_time()
        # Failing after as long a wait (its timeout) is hanging too; a refusal comes at once.
        if got is None or (got[0] is None and now - started >= self.pace.stall_after()):
            self.memory.stalled(contact.node_id, now)
            self.hung.add(contact.node_id)
            return None
        if got[0] is not None:  # it answered (not a refused or reset connection)
            self.memory.answered(contact.node_id)
            self.pace.observe(now - started)
        return got[0]


def _owned(held: ShareHeld, pack_id: bytes, owner: bytes) -> ShareDescriptor | None:
    try:
        descriptor = ShareDescriptor.from_bytes(held.descriptor)
    except WireError:
        return None
    if descriptor.owner != owner or descriptor.pack_id != pack_id or not descriptor.verify():
        return None
    return descriptor


async def survey_pack(
    dht: DhtNode,
    pack_id: bytes,
    owner: bytes,
    rng: random.Random,
    timeout: float,
    patience: Patience | None = None,
) -> tuple[Survey | None, list[Contact]]:
    """Query and audit the peers closest to the pack; None when no holder shows the owner's
    descriptor. Also returns those closest peers, where missing shares would go,
    without the holders that hung lately (`patience`: the operation's, or this survey's)."""
    patience = patience if patience is not None else Patience()
    skip = functools.partial(patience.passed_over, dht)
    closest = (await dht.lookup(pack_id, skip=skip, paced=patience.ask)).contacts
    answers: list[tuple[Contact, ShareHeld]] = []

    async def ask(contact: Contact) -> None:
        query = functools.partial(query_share, dht, contact, pack_id, owner, timeout)
        holding = await patience.ask(contact, query)
        if holding is not None and holding.held is not None:
            answers.append((contact, holding.held))

    async with trio.open_nursery() as nursery:
        for contact in closest:
            nursery.start_soon(ask, contact)
    owned = [d for _, held in answers if (d := _owned(held, pack_id, owner)) is not None]
    if not owned:
        return None, closest
    # The latest lease any holder shows: repaired shares should carry it.
    survey = Survey(pack_id, max(owned, key=lambda d: d.lease_expiry))

    async def audit(contact: Contact, held: ShareHeld) -> None:
        if survey.on_holding(contact, held.index, held.descriptor):
            prove = functools.partial(audit_claim, dht, survey, contact, rng, timeout)
            await patience.ask(contact, prove)

    async with trio.open_nursery() as nursery:
        for contact, held in answers:
            nursery.start_soon(audit, contact, held)
    return survey, closest
