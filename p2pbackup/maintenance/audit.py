"""Asking a peer which share of a pack it holds, and making it prove the claim.

Owners checking their packs, holders surveying their siblings and owners
renewing leases all start by asking peers what they hold; holders and owners
then audit each claim alike. One place for both keeps a silent peer, an odd
answer and a failed proof meaning the same thing everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.survey import Survey
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Remote
from p2pbackup.shares.upkeep_messages import AuditProof, QueryShare, ShareHeld


@dataclass(frozen=True)
class Holding:
    """A peer's answer to QUERY_SHARE: who answered, and the share it holds, if any."""

    remote: Remote
    held: ShareHeld | None


async def query_share(
    dht: DhtNode, contact: Contact, pack_id: bytes, timeout: float
) -> Holding | None:
    """Ask one peer which share of the pack it holds; None when it does not answer."""
    try:
        reply = await dht.transport.request(contact, QueryShare(pack_id), timeout)
    except P2PBackupError:
        return None
    held = reply.message if isinstance(reply.message, ShareHeld) else None
    return Holding(reply.remote, held)


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
