"""Checking a claimed contact by dialling it ourselves (decision 0023, with routes: 0041).

The main address is dialled, or, when the contact names routes, each of its
first direct routes in turn, each passing the same per-address bound as a main
address. A peer nobody can dial directly names relay routes: it is checked by
a PING over a connection this peer dials through one of them (never over the
peer's own connection to us), so a relayed peer is verified, and can be placed
on, only once it answered through a relay.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import TYPE_CHECKING

import trio

from p2pbackup.dht.dial_back import DialBacks, direct_routes
from p2pbackup.dht.messages import Ping
from p2pbackup.dht.routing import AddOutcome
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.dialer import start_delays
from p2pbackup.net.stagger import first_to_succeed
from p2pbackup.net.transport import Address

if TYPE_CHECKING:
    from p2pbackup.dht.node import DhtNode

log = logging.getLogger("p2pbackup.dht")


async def check_routes(node: DhtNode, contact: Contact, dial_backs: DialBacks) -> bool | None:
    """Whether `contact` answered where it says it can be dialled (and is now first-hand);
    None when no address of it passed the per-address bound, so nothing was dialled.

    Its routes are raced, each begun a moment after the one before (`net.stagger`):
    tried one after the other, a NATed peer's LAN address swallowed the whole RPC
    timeout before its relays were asked."""
    timeout = node.config.rpc_timeout
    dialled: list[Address] = []

    async def direct(address: Address, offer: bool) -> bool:
        if offer and not dial_backs.offer(address, trio.current_time()):
            raise _NotChecked
        dialled.append(address)
        try:
            reply = await node.transport.request(address, Ping(), timeout)
        except P2PBackupError as exc:
            log.debug("dial-back to %s at %s failed: %s", contact, address, exc)
            raise _NotChecked from None
        finally:
            if offer:
                dial_backs.done(address)
        if not node._first_hand(contact, reply, address):
            raise _NotChecked
        return True

    async def relayed(routes: tuple[Route, ...]) -> bool:
        try:
            reply = await node.transport.request(
                contact.with_routes(routes), Ping(), timeout, dialled=True
            )
        except P2PBackupError as exc:
            log.debug("dial-back to %s through its relays failed: %s", contact, exc)
            raise _NotChecked from None
        if not node._first_hand(contact, reply):
            raise _NotChecked
        return True

    addresses = direct_routes(contact)
    attempts: list[Callable[[], Awaitable[bool]]] = [
        partial(direct, address, offer) for address, offer in addresses
    ]
    relays = tuple(route for route in contact.routes if route.relay is not None)
    tried = [Route(*address) for address, _ in addresses]
    if relays:
        attempts.append(partial(relayed, relays))
        tried.append(relays[0])  # all relays in one attempt, started as a relay route is
    try:
        return await first_to_succeed(attempts, start_delays(tried), (_NotChecked,))
    except _NotChecked:
        return False if dialled or relays else None


class _NotChecked(Exception):
    """One way of checking a contact did not prove it: the next is tried."""


def drop_if_hearsay(node: DhtNode, contact: Contact) -> bool:
    """A dial-back of `contact` failed: if the table holds it as hearsay (never answered
    us at that address), it leaves the table; whether it did. A live contact the table
    knows first-hand stays: one lost ping does not make it dead."""
    held = node.table.get(contact.node_id)
    if held is None or held.address != contact.address or node.peers.verified(held):
        return False
    return node.table.remove(contact.node_id)


def claim(node: DhtNode, contact: Contact) -> None:
    """Dial back a peer that claimed an address, where its bucket has room for it.

    Where the bucket is full and its oldest contact quiet, that one is probed
    first and the claim checked only if it failed to answer: the paper's rule.
    Most answer, and a claimant checked beforehand would only wait among the
    replacements (a quarter of the dial-backs of askers in a churning mesh).
    """
    room = node.table.room_for(contact, trio.current_time())
    if room.outcome is AddOutcome.ADDED:
        node._check(contact)
    elif room.ping is not None and node.nursery is not None:
        node.table.probing(room.ping)
        node.nursery.start_soon(_probe_for, node, room.ping, contact)


async def _probe_for(node: DhtNode, oldest: Contact, claimant: Contact) -> None:
    if not await node._probe_oldest(oldest):
        claim(node, claimant)  # its place may be free now
