"""The owner's health check of one pack: how many of its shares are live and proven.

The owner holds no share, so it learns the share set from the holders: the
first descriptor that carries its own signature fixes the roots, and every
claim is then audited against them like a sibling would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import WireError
from p2pbackup.maintenance.audit import audit_claim, query_share
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.upkeep_messages import ShareHeld


@dataclass(frozen=True)
class PackHealth:
    pack_id: bytes
    live: int
    k: int
    n: int

    @property
    def recoverable(self) -> bool:
        return self.live >= self.k > 0


def _owned(held: ShareHeld, pack_id: bytes, owner: bytes) -> ShareDescriptor | None:
    try:
        descriptor = ShareDescriptor.from_bytes(held.descriptor)
    except WireError:
        return None
    if descriptor.owner != owner or descriptor.pack_id != pack_id or not descriptor.verify():
        return None
    return descriptor


async def survey_pack(
    dht: DhtNode, pack_id: bytes, owner: bytes, rng: random.Random, timeout: float
) -> tuple[Survey | None, list[Contact]]:
    """Query and audit the peers closest to the pack; None when no holder shows the owner's
    descriptor. Also returns those closest peers, where missing shares would go."""
    closest = (await dht.lookup(pack_id)).contacts
    answers: list[tuple[Contact, ShareHeld]] = []

    async def ask(contact: Contact) -> None:
        holding = await query_share(dht, contact, pack_id, owner, timeout)
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
            await audit_claim(dht, survey, contact, rng, timeout)

    async with trio.open_nursery() as nursery:
        for contact, held in answers:
            nursery.start_soon(audit, contact, held)
    return survey, closest


async def check_pack(
    dht: DhtNode, pack_id: bytes, owner: bytes, rng: random.Random, timeout: float
) -> PackHealth:
    survey, _ = await survey_pack(dht, pack_id, owner, rng, timeout)
    if survey is None:
        return PackHealth(pack_id, 0, 0, 0)
    return PackHealth(pack_id, survey.live, survey.descriptor.k, survey.descriptor.n)
