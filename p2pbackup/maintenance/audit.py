"""Asking a peer about its share of a pack, and making it prove the claim.

Owners checking their packs, holders surveying their siblings and owners
renewing or releasing leases all send one request to each of many peers,
where a peer that is gone or answers oddly is simply left out. Holders and
owners then audit each claim alike. One place for both keeps a silent
peer, an odd answer and a failed proof meaning the same thing everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TypeVar

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError, PeerUnreachable, WireError
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Remote, Reply
from p2pbackup.shares.upkeep_messages import AuditProof, QueryShare, ShareHeld
from p2pbackup.wire.messages import Message

M = TypeVar("M", bound=Message)


async def ask(dht: DhtNode, contact: Contact, message: Message, timeout: float) -> Reply | None:
    """One request to one peer; None when it cannot be reached or answers with an error.
    One it cannot reach counts towards leaving the routing table (`DhtNode.unanswered`)."""
    try:
        return await dht.transport.request(contact, message, timeout)
    except PeerUnreachable:
        dht.unanswered(contact)
        return None
    except P2PBackupError:
        return None


def answer(reply: Reply | None, kind: type[M]) -> M | None:
    """The reply's message when it is the kind asked for; None for no or another answer."""
    if reply is None or not isinstance(reply.message, kind):
        return None
    return reply.message


@dataclass(frozen=True)
class Holding:
    """A peer's answer to QUERY_SHARE: who answered, and the share it holds, if any."""

    remote: Remote
    held: ShareHeld | None


async def query_share(
    dht: DhtNode,
    contact: Contact,
    pack_id: bytes,
    owner: bytes,
    timeout: float,
    block: int | None = None,
) -> Holding | None:
    """Ask one peer which share of `owner`'s pack it holds, with `block` proven; None when
    it does not answer."""
    reply = await ask(dht, contact, QueryShare(pack_id, owner, block), timeout)
    if reply is None:
        return None
    return Holding(reply.remote, answer(reply, ShareHeld))


async def held_descriptor(
    dht: DhtNode, contact: Contact, pack_id: bytes, owner: bytes, timeout: float
) -> ShareDescriptor | None:
    """The descriptor of the share of `owner`'s pack a peer says it holds; None when it
    holds none, does not answer, or answers with one that does not parse."""
    holding = await query_share(dht, contact, pack_id, owner, timeout)
    if holding is None or holding.held is None:
        return None
    try:
        return ShareDescriptor.from_bytes(holding.held.descriptor)
    except WireError:
        return None


async def audit_claim(
    dht: DhtNode, survey: Survey, contact: Contact, rng: random.Random, timeout: float
) -> bool:
    """Challenge one holder's claim and record the verdict in `survey`; True if proven."""
    challenge = survey.challenge(contact, rng)
    proof = answer(await ask(dht, contact, challenge, timeout), AuditProof)
    return survey.on_proof(contact, proof)


def judge_proof(survey: Survey, contact: Contact, held: ShareHeld, block: int) -> bool:
    """Judge the proof a claim came with, as the answer to an audit at `block`, and
    record the verdict in `survey`; True if proven (decision 0066)."""
    survey.challenge_at(contact, block)
    return survey.on_proof(contact, held.audit_proof())
