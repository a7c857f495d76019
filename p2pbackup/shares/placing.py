"""Sending shares to peers by a `PlacementPlan`: used by owners and by repairers.

Shares go out in parallel; a refusal or a failure moves that share on to the
next candidate, so no peer gets two shares of one pack and a full disk costs
one more request, not the share. An owner's placement also moves a share on
when its peer stays silent past a stall interval, and tries peers that failed
or hung lately last (decision 0029). Shares spread over address blocks where the
candidates allow (see `PlacementPlan`).

With `prove`, a peer's `ShareStored` is only a claim: the placer names a random
block of the share in the put, the peer proves it in its reply once the share is
durable (decision 0057), and the share counts as placed only when the proof checks
against the owner-signed root. A peer that cannot prove it is treated as one that
failed an audit, and its share moves on.
"""

from __future__ import annotations

import enum
import functools
import logging
import math
import random
from collections.abc import Mapping, MutableMapping, Sequence

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.net.contact import Contact
from p2pbackup.net.framing import SLOWEST_RATE
from p2pbackup.placement.plan import PlacementPlan
from p2pbackup.shares.gathering import HolderMemory, Pace
from p2pbackup.shares.messages import PutShare, ShareStored
from p2pbackup.shares.pacing import within_pace
from p2pbackup.shares.proving import challenge, stored_proves
from p2pbackup.shares.transfer_window import TransferGate, room
from p2pbackup.shares.upkeep_messages import Audit
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.shares")


class Outcome(enum.Enum):
    STORED = "stored"
    REFUSED = "refused"
    FAILED = "failed"
    UNPROVEN = "unproven"


async def place_shares(
    dht: DhtNode,
    pack_id: bytes,
    descriptor: bytes,
    shares: Mapping[int, bytes],
    candidates: Sequence[Contact],
    *,
    happy: int,
    timeout: float,
    prove: random.Random | None = None,
    holders: HolderMemory | None = None,
    pace: Pace | None = None,
    drop_placed: bool = False,
    gate: TransferGate | None = None,
) -> tuple[PlacementPlan, dict[int, Contact], int]:
    """Place every share of `shares` (index -> bytes); returns the plan, where each went,
    and the bytes sent. With `prove`, a share counts once its peer answered an audit of
    a block drawn from it (in this task, in plan order, so a seeded run replays).
    With `holders`, peers that failed or hung lately are left out while `happy` others
    remain, and tried last otherwise; with `pace`, a peer that has not stored (and
    proven) its share within `pace.stall_after()` counts as failed and the share moves
    on, instead of waiting out `timeout`. With `drop_placed`, a mutable `shares` loses
    each share once placed: a pack's shares need not wait for its slowest holder. With
    `gate`, a put waits for room on the owner's uplink before it starts, and its stall
    interval runs from then (decision 0097)."""
    indices = sorted(shares)
    if holders is not None:
        candidates = _trusted(holders, candidates, happy)
    plan = PlacementPlan(len(indices), happy, candidates, block_of=dht.block_of)
    signed = ShareDescriptor.from_bytes(descriptor) if prove is not None else None
    send, receive = trio.open_memory_channel[tuple[int, Outcome, str]](math.inf)
    sent = 0

    async def place(slot: int, contact: Contact, audit: Audit | None) -> None:
        index = indices[slot]
        block = None if audit is None else audit.block  # proven in the reply
        message = PutShare(pack_id, index, descriptor, shares[index], block)
        async with room(gate, len(message.data)) as ticket:
            started = trio.current_time()
            patience = timeout + len(message.data) / SLOWEST_RATE
            attempt = functools.partial(
                _store_and_prove, dht, contact, message, signed, audit, patience
            )
            got = await within_pace(pace, started, attempt, ticket.transfer_seconds)
            outcome, reason = got if got is not None else (Outcome.FAILED, "")
            ticket.through = outcome is Outcome.STORED
        if holders is not None:
            _remember(holders, pace, contact, outcome, started, got is None)
        await send.send((slot, outcome, reason))

    async with trio.open_nursery() as nursery:
        in_flight = 0
        while True:
            for slot, contact in plan.assignments():
                audit = _challenge(signed, indices[slot], prove)
                nursery.start_soon(place, slot, contact, audit)
                sent += len(shares[indices[slot]])
                in_flight += 1
            if in_flight == 0:
                break
            slot, outcome, reason = await receive.receive()
            in_flight -= 1
            _report(plan, slot, outcome, reason)
            if drop_placed and outcome is Outcome.STORED and isinstance(shares, MutableMapping):
                del shares[indices[slot]]
    placed = {indices[slot]: contact for slot, contact in plan.placed.items()}
    return plan, placed, sent


def _challenge(
    signed: ShareDescriptor | None, index: int, prove: random.Random | None
) -> Audit | None:
    return None if signed is None or prove is None else challenge(signed, index, prove)


async def _store_and_prove(
    dht: DhtNode,
    contact: Contact,
    message: PutShare,
    signed: ShareDescriptor | None,
    audit: Audit | None,
    timeout: float,
) -> tuple[Outcome, str]:
    """Put one share; with an audit (its block named in the put), the reply must
    prove it: one exchange, where a put and then an audit took two."""
    outcome, reason, reply = await _put(dht, contact, message, timeout)
    if outcome is Outcome.STORED and audit is not None:
        assert signed is not None
        outcome = _proven(dht, contact, signed, audit, reply)
        if outcome is Outcome.UNPROVEN:
            log.warning(
                "share %d of %s: %s said it stored it and could not prove it",
                message.index,
                message.pack_id.hex()[:12],
                contact,
            )
    return outcome, reason


def _trusted(holders: HolderMemory, candidates: Sequence[Contact], happy: int) -> list[Contact]:
    """The candidates without the peers that failed or hung lately when `happy` others are
    left (the pack then gets fewer than n shares, and maintenance tops it up later);
    else all of them, those last. With every candidate used, as in a small mesh, each
    pack would otherwise hand a share to a hung peer and wait a stall for it."""
    now = trio.current_time()
    ranked = holders.ranked(candidates, now)
    healthy = [c for c in ranked if not holders.suspect(c.node_id, now)]
    return healthy if len(healthy) >= happy else ranked


def _remember(
    holders: HolderMemory,
    pace: Pace | None,
    contact: Contact,
    outcome: Outcome,
    started: float,
    stalled: bool,
) -> None:
    """What this placement teaches the operation's later ones about the peer."""
    now = trio.current_time()
    if stalled:
        log.info("%s stored nothing within the stall interval: its share moves on", contact)
        holders.stalled(contact.node_id, now)
    elif outcome is Outcome.FAILED:
        holders.failed(contact.node_id, now)
    else:
        holders.answered(contact.node_id)
        if outcome is Outcome.STORED and pace is not None:
            pace.observe(now - started)


def _report(plan: PlacementPlan, slot: int, outcome: Outcome, reason: str) -> None:
    if outcome is Outcome.STORED:
        plan.on_stored(slot)
    elif outcome is Outcome.REFUSED:
        plan.on_refused(slot, reason)
    elif outcome is Outcome.UNPROVEN:
        plan.on_unproven(slot)
    else:
        plan.on_failed(slot)


async def _put(
    dht: DhtNode, contact: Contact, message: PutShare, timeout: float
) -> tuple[Outcome, str, Message | None]:
    """Hand one share to one peer; how it went, the peer's reason for a refusal, and
    its reply."""
    try:
        reply = await dht.transport.request(contact, message, timeout)
    except RemoteError as exc:
        return Outcome.REFUSED, str(exc), None
    except PeerUnreachable as exc:
        log.info("share %d of %s: %s", message.index, message.pack_id.hex()[:12], exc)
        return Outcome.FAILED, "", None
    dht.observe(reply.remote)
    stored = isinstance(reply.message, ShareStored)
    return (Outcome.STORED if stored else Outcome.FAILED), "", reply.message


def _proven(
    dht: DhtNode, contact: Contact, descriptor: ShareDescriptor, audit: Audit, reply: Message | None
) -> Outcome:
    """STORED only when the put's reply proves the audited block; otherwise the peer
    failed an audit, as a separate audit that went unanswered or wrong counted."""
    now = trio.current_time()
    if not stored_proves(descriptor, audit, reply):
        dht.peers.failed_audit(contact.node_id, now)
        return Outcome.UNPROVEN
    # It answered, first-hand, at the address we dialled.
    dht.peers.answered(contact, now)
    return Outcome.STORED
