"""The owner's health check of one pack: how many of its shares are live and proven.

The owner holds no share, so it learns the share set from the holders: the
first descriptor that carries its own signature fixes the roots, and every
claim is then audited against them like a sibling would.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import trio

from p2pbackup.base.offload import RunSync
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packstore import PackStore
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError, WireError
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.shares.placing import place_shares
from p2pbackup.shares.upkeep_messages import AuditProof, QueryShare, ShareHeld


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
        try:
            reply = await dht.transport.request(contact, QueryShare(pack_id), timeout)
        except P2PBackupError:
            return
        if isinstance(reply.message, ShareHeld):
            answers.append((contact, reply.message))

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


async def repair_pack(
    dht: DhtNode,
    packs: PackStore,
    pack_id: bytes,
    owner: bytes,
    rng: random.Random,
    timeout: float,
    run_sync: RunSync,
) -> tuple[PackHealth, int]:
    """The owner's repair of one pack: rebuild every share not proven live and place it on
    the closest peers holding none. Returns the health found and the shares placed."""
    survey, closest = await survey_pack(dht, pack_id, owner, rng, timeout)
    if survey is None:
        return PackHealth(pack_id, 0, 0, 0), 0
    descriptor = survey.descriptor
    health = PackHealth(pack_id, survey.live, descriptor.k, descriptor.n)
    missing = [i for i in range(descriptor.n) if i not in survey.proven]
    if not missing or not health.recoverable:
        return health, 0
    data = await packs.get(pack_id)  # any k verified shares, decoded
    shares = await run_sync(encode_pack, data, descriptor.k, descriptor.n)
    holding = {c.node_id for c in survey.proven.values()} | set(survey.claims) | survey.failed
    targets = [c for c in closest if c.node_id not in holding]
    _, placed, _ = await place_shares(
        dht,
        pack_id,
        descriptor.to_bytes(),
        {i: shares[i] for i in missing},
        targets,
        happy=0,
        timeout=timeout,
    )
    return health, len(placed)


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
