"""Rebuilding a pack's missing shares and placing them on peers that hold none.

Two peers repair: an owner, who can read its pack back from any k shares,
and a set's keeper, who holds one share and fetches the others from its
proven siblings. Both then encode the pack again, keep only the missing
indices and place them closest first, so a rebuilt share lands where a
lookup for the pack will look.
"""

from __future__ import annotations

import random

from p2pbackup.base.offload import RunSync
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import decode_pack, encode_pack
from p2pbackup.codec.packstore import PackStore
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.maintenance.audit import answer, ask
from p2pbackup.maintenance.owner_check import PackHealth, survey_pack
from p2pbackup.maintenance.survey import RepairPlan
from p2pbackup.net.contact import Contact
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.shares.placing import place_shares


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
