"""Rebuilding a pack's missing shares and placing them on peers that hold none.

An owner can read its pack back from any k shares; it encodes the pack
again, keeps only the missing indices and places them closest first, so a
rebuilt share lands where a lookup for the pack will look.
"""

from __future__ import annotations

import random

from p2pbackup.base.offload import RunSync
from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.codec.erasure import encode_pack
from p2pbackup.codec.packstore import PackStore
from p2pbackup.dht.node import DhtNode
from p2pbackup.maintenance.owner_check import PackHealth, survey_pack
from p2pbackup.net.contact import Contact
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
