"""Rebuilding a pack's missing shares and placing them on peers that hold none.

Two peers repair: an owner, who can read its pack back from any k shares,
and a set's keeper, who holds one share and fetches the others from its
proven siblings. Both then encode the pack again, keep only the missing
indices and place them closest first, so a rebuilt share lands where a
lookup for the pack will look.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import trio

from p2pbackup.base.offload import RunSync
from p2pbackup.codec.descriptor import ShareDescriptor, describe_pack, same_share_set
from p2pbackup.codec.erasure import decode_pack, encode_pack
from p2pbackup.codec.packstore import PackStore
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.audit import answer, ask, held_descriptor
from p2pbackup.maintenance.owner_check import PackHealth, Patience, survey_pack
from p2pbackup.maintenance.survey import RepairPlan
from p2pbackup.net.contact import Contact
from p2pbackup.shares.lease_rules import release_for
from p2pbackup.shares.mesh_packs import PlacementFailed
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.shares.placing import place_shares
from p2pbackup.shares.redundancy import Redundancy, too_few_peers
from p2pbackup.shares.transfer_window import TransferGate


async def _place_rebuilt(
    dht: DhtNode,
    run_sync: RunSync,
    pack_id: bytes,
    descriptor: ShareDescriptor,
    descriptor_bytes: bytes,
    data: bytes,
    missing: tuple[int, ...] | list[int],
    targets: tuple[Contact, ...],
    timeout: float,
    gate: TransferGate | None = None,
) -> tuple[dict[int, Contact], int]:
    """Encode the pack again and place the `missing` shares; where each went, bytes sent."""
    shares = await run_sync(encode_pack, data, descriptor.k, descriptor.n)
    _, placed, sent = await place_shares(
        dht,
        pack_id,
        descriptor_bytes,
        {i: shares[i] for i in missing},
        targets,
        happy=0,
        timeout=timeout,
        gate=gate,
    )
    return placed, sent


async def repair_pack(
    dht: DhtNode,
    packs: PackStore,
    pack_id: bytes,
    owner: bytes,
    rng: random.Random,
    timeout: float,
    run_sync: RunSync,
    patience: Patience | None = None,
    gate: TransferGate | None = None,
) -> tuple[PackHealth, int]:
    """The owner's repair of one pack: rebuild every share not proven live and place it on
    the closest peers holding none, through the owner's send `gate` (decision 0097).
    Returns the health found and the shares placed."""
    survey, closest = await survey_pack(dht, pack_id, owner, rng, timeout, patience)
    health = PackHealth.of(pack_id, survey)
    if survey is None:
        return health, 0
    descriptor = survey.descriptor
    missing = [i for i in range(descriptor.n) if i not in survey.proven]
    if not missing or not health.recoverable:
        return health, 0
    data = await packs.get(pack_id)  # any k verified shares, decoded
    placed, _ = await _place_rebuilt(
        dht,
        run_sync,
        pack_id,
        descriptor,
        descriptor.to_bytes(),
        data,
        missing,
        survey.takers(closest),
        timeout,
        gate,
    )
    return health, len(placed)


async def rebuild_from_siblings(
    dht: DhtNode,
    run_sync: RunSync,
    pack_id: bytes,
    descriptor: ShareDescriptor,
    descriptor_bytes: bytes,
    mine: tuple[int, bytes],
    plan: RepairPlan,
    timeout: float,
) -> tuple[dict[int, Contact], int]:
    """The keeper's repair: our share `mine` (index, data) and enough fetched from the
    plan's sources make k; returns where each rebuilt share went and the bytes moved."""
    my_index, my_share = mine
    gathered = {my_index: my_share}
    for index, contact in plan.sources:
        if len(gathered) >= descriptor.k:
            break
        if index in gathered:
            continue
        request = GetShare(pack_id, descriptor.owner)
        share = answer(await ask(dht, contact, request, timeout), ShareData)
        if share is not None and share.index == index:
            ok = await run_sync(descriptor.check_share, index, share.data)
            if ok:
                gathered[index] = share.data
    if len(gathered) < descriptor.k:
        raise P2PBackupError(f"only {len(gathered)} of {descriptor.k} shares fetched")
    data = await run_sync(decode_pack, gathered, descriptor.k, descriptor.n, descriptor.length)
    placed, sent = await _place_rebuilt(
        dht,
        run_sync,
        pack_id,
        descriptor,
        descriptor_bytes,
        data,
        plan.missing,
        plan.targets,
        timeout,
    )
    return placed, sent + sum(len(s) for s in gathered.values()) - len(my_share)


async def reencode_pack(
    dht: DhtNode,
    packs: PackStore,
    pack_id: bytes,
    identity: Identity,
    target: Redundancy,
    rng: random.Random,
    timeout: float,
    run_sync: RunSync,
    now: Callable[[], float],
    patience: Patience | None = None,
    gate: TransferGate | None = None,
) -> tuple[PackHealth, int] | None:
    """The owner's re-encoding of one pack to `target`'s k/n (decision 0034): read it back
    from any k shares, encode it again, place and prove the new set, then release what
    is left of the old one. The pack id is the hash of the pack's bytes, so it and every
    snapshot naming it stay valid. Returns the new set's health and the shares placed,
    or None when the pack has `target`'s k/n already (a plain repair then).

    The new set's lease is later than any of the old set's: a holder of an old share
    gives it up for a new one, never the other way round."""
    owner = identity.public_key
    survey, closest = await survey_pack(dht, pack_id, owner, rng, timeout, patience)
    health = PackHealth.of(pack_id, survey)
    if survey is None:
        return health, 0
    old = survey.descriptor
    if (old.k, old.n) == (target.k, target.n):
        return None
    if not health.recoverable:
        return health, 0
    if len(closest) < target.happy:  # checked first: no old share is given up for nothing
        raise PlacementFailed(f"pack {pack_id.hex()[:12]}: {too_few_peers(len(closest), target)}")
    data = await packs.get(pack_id)
    shares = await run_sync(encode_pack, data, target.k, target.n)
    lease = max(int(now()) + target.lease_seconds, old.lease_expiry + 1)
    new = await run_sync(describe_pack, identity, pack_id, shares, target.k, len(data), lease)
    # Peers holding no share of the pack first: an old share is replaced only where needed.
    holding = {c.node_id for c in survey.proven.values()} | set(survey.claims)
    order = [c for c in closest if c.node_id not in holding]
    order += [c for c in closest if c.node_id in holding]
    plan, placed, _ = await place_shares(
        dht,
        pack_id,
        new.to_bytes(),
        dict(enumerate(shares)),
        order,
        happy=target.happy,
        timeout=timeout,
        prove=rng,
        gate=gate,
    )
    if not plan.happy_enough:
        raise PlacementFailed(f"pack {pack_id.hex()[:12]} as {target.label}: {plan.shortfall()}")
    await _release_set(dht, identity, pack_id, old, closest, timeout)
    return PackHealth(pack_id, len(placed), new.k, new.n), len(placed)


async def _release_set(
    dht: DhtNode,
    identity: Identity,
    pack_id: bytes,
    old: ShareDescriptor,
    closest: list[Contact],
    timeout: float,
) -> None:
    """Release the pack at the peers that still show a share of the `old` set (each holds
    one share of the pack at most, so none of them holds a new one)."""
    release = release_for(identity, pack_id)

    async def one(contact: Contact) -> None:
        theirs = await held_descriptor(dht, contact, pack_id, identity.public_key, timeout)
        if theirs is not None and same_share_set(theirs, old):
            await ask(dht, contact, release, timeout)

    async with trio.open_nursery() as nursery:
        for contact in closest:
            nursery.start_soon(one, contact)
