"""Leases: how long storage peers keep an owner's shares, and how owners extend or end them.

Every share's descriptor carries a lease expiry signed by the owner; a share
whose lease has run out is deleted by its holder. An owner that still keeps a
snapshot renews: it reads the current descriptor from a holder, signs it
again with a later expiry and hands it to every holder it finds. Holders
accept only a later expiry, so a replayed old descriptor cannot cut a lease
short, and they pass the newest descriptor on to siblings during their
surveys, so a holder the owner missed catches up. An owner that prunes a
pack releases it instead: a signature over the pack id tells holders to drop
their share now. Pack ids are content hashes and never come back, so a
replayed release costs nothing.
"""

from __future__ import annotations

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.maintenance.audit import answer, ask, held_descriptor
from p2pbackup.net.contact import Contact
from p2pbackup.shares.lease_rules import release_for
from p2pbackup.shares.upkeep_messages import LeaseRenewed, RenewLease, ShareReleased


async def renew_pack(
    dht: DhtNode, identity: Identity, pack_id: bytes, lease_expiry: int, timeout: float
) -> int:
    """Extend the lease of every share of the pack the closest peers hold; returns how many
    holders now keep it until at least `lease_expiry`."""
    closest = (await dht.lookup(pack_id)).contacts
    holders: list[tuple[Contact, ShareDescriptor]] = []

    async def query(contact: Contact) -> None:
        descriptor = await held_descriptor(dht, contact, pack_id, identity.public_key, timeout)
        if descriptor is None:
            return
        if descriptor.owner == identity.public_key and descriptor.pack_id == pack_id:
            holders.append((contact, descriptor))

    async with trio.open_nursery() as nursery:
        for contact in closest:
            nursery.start_soon(query, contact)
    sound = [d for _, d in holders if d.verify()]
    if not sound:
        return 0
    # The latest set: after a `repair --reencode` a holder out of reach may still show
    # the old one, which must not be renewed past the new (decision 0034).
    newest = max(sound, key=lambda d: d.lease_expiry)
    renewed = newest.renewed(identity, lease_expiry).to_bytes()
    kept = 0

    async def renew(contact: Contact) -> None:
        nonlocal kept
        reply = answer(await ask(dht, contact, RenewLease(pack_id, renewed), timeout), LeaseRenewed)
        if reply is not None and reply.lease_expiry >= lease_expiry:
            kept += 1

    async with trio.open_nursery() as nursery:
        for contact, _ in holders:
            nursery.start_soon(renew, contact)
    return kept


async def release_pack(dht: DhtNode, identity: Identity, pack_id: bytes, timeout: float) -> int:
    """Tell the peers closest to the pack to drop its shares now; returns shares dropped.

    A holder out of reach keeps its share until the lease runs out."""
    closest = (await dht.lookup(pack_id)).contacts
    message = release_for(identity, pack_id)
    dropped = 0

    async def release(contact: Contact) -> None:
        nonlocal dropped
        reply = answer(await ask(dht, contact, message, timeout), ShareReleased)
        if reply is not None:
            dropped += reply.count

    async with trio.open_nursery() as nursery:
        for contact in closest:
            nursery.start_soon(release, contact)
    return dropped
