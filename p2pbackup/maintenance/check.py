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
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.maintenance.messages import AuditProof, QueryShare, ShareHeld
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact


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


async def check_pack(
    dht: DhtNode, pack_id: bytes, owner: bytes, rng: random.Random, timeout: float
) -> PackHealth:
    closest = (await dht.lookup(pack_id)).contacts
    answers: list[tuple[Contact, ShareHeld]] = []

    async def ask(contact: Contact) -> None:
        try:
            reply = await dht.transport.request(contact, QueryShare(pack_id), timeout)
        except P2PBackupError:
            return
        if isinstance(reply.message, ShareHeld):
            answers.append((contact, reply.message))

    async with trio.open_nursery() as nursery:
        for contact in closest:
            nursery.start_soon(ask, contact)
    descriptor = next(
        (d for _, held in answers if (d := _owned(held, pack_id, owner)) is not None), None
    )
    if descriptor is None:
        return PackHealth(pack_id, 0, 0, 0)
    survey = Survey(pack_id, descriptor)

    async def audit(contact: Contact, held: ShareHeld) -> None:
        if survey.on_holding(contact, held.index, held.descriptor):
            await audit_claim(dht, survey, contact, rng, timeout)

    async with trio.open_nursery() as nursery:
        for contact, held in answers:
            nursery.start_soon(audit, contact, held)
    return PackHealth(pack_id, survey.live, descriptor.k, descriptor.n)


async def audit_claim(
    dht: DhtNode, survey: Survey, contact: Contact, rng: random.Random, timeout: float
) -> bool:
    """Challenge one holder's claim and record the verdict in `survey`; True if proven."""
    challenge = survey.challenge(contact, rng)
    try:
        reply = await dht.transport.request(contact, challenge, timeout)
        proof = reply.message if isinstance(reply.message, AuditProof) else None
    except P2PBackupError:
        proof = None
    return survey.on_proof(contact, proof)
