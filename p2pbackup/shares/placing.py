"""Sending shares to peers by a `PlacementPlan`: used by owners and by repairers.

Shares go out in parallel; a refusal or a failure moves that share on to the
next candidate, so no peer gets two shares of one pack and a full disk costs
one more request, not the share.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import trio

from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.net.contact import Contact
from p2pbackup.placement.plan import PlacementPlan
from p2pbackup.shares.messages import PutShare, ShareStored

log = logging.getLogger("p2pbackup.shares")


async def place_shares(
    dht: DhtNode,
    pack_id: bytes,
    descriptor: bytes,
    shares: Mapping[int, bytes],
    candidates: Sequence[Contact],
    *,
    happy: int,
    timeout: float,
) -> tuple[PlacementPlan, dict[int, Contact], int]:
    """Place every share of `shares` (index -> bytes); returns the plan, where each went,
    and the bytes sent."""
    indices = sorted(shares)
    plan = PlacementPlan(len(indices), happy, candidates)
    send, receive = trio.open_memory_channel[tuple[int, str | None, bool]](math.inf)
    sent = 0

    async def place(slot: int, contact: Contact) -> None:
        index = indices[slot]
        message = PutShare(pack_id, index, descriptor, shares[index])
        try:
            reply = await dht.transport.request(contact, message, timeout)
        except RemoteError as exc:
            await send.send((slot, str(exc), False))
            return
        except PeerUnreachable as exc:
            log.info("share %d of %s: %s", index, pack_id.hex()[:12], exc)
            await send.send((slot, None, False))
            return
        dht.observe(reply.remote)
        await send.send((slot, None, isinstance(reply.message, ShareStored)))

    async with trio.open_nursery() as nursery:
        in_flight = 0
        while True:
            for slot, contact in plan.assignments():
                nursery.start_soon(place, slot, contact)
                sent += len(shares[indices[slot]])
                in_flight += 1
            if in_flight == 0:
                break
            slot, refusal, stored = await receive.receive()
            in_flight -= 1
            if stored:
                plan.on_stored(slot)
            elif refusal is not None:
                plan.on_refused(slot, refusal)
            else:
                plan.on_failed(slot)
    placed = {indices[slot]: contact for slot, contact in plan.placed.items()}
    return plan, placed, sent
