"""Joining the mesh: a bootstrap ping, a walk to our own neighbourhood, and a second look.

Peers hand out only contacts they have dialled back (decision 0023), so
peers that join together do not hear of each other on their first walk;
a second self-lookup, once those checks are done, introduces them. A peer
that restarts with its book of acquaintances first takes them back into its
routing table: they answered it at those addresses (decision 0064).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import trio

from p2pbackup.dht.messages import FindNode, Nodes
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Address

if TYPE_CHECKING:
    from p2pbackup.dht.node import DhtNode


async def join(node: DhtNode, addresses: Iterable[Address]) -> int:
    """Ping the bootstrap addresses, then look ourselves up; how many answered.

    A peer whose book gave it a table of at least k contacts is back from a restart:
    its neighbourhood is in its table already, so it asks only the alpha nearest, as
    the second look of a new peer does, needs no second look, and pings its bootstrap
    peers only if none of its own contacts answered (decision 0064). Given no address
    (a peer restarted without one), its book's contacts, however few, are all it has."""
    addresses = tuple(addresses)
    taken = table_from_book(node) if not len(node.table) else 0
    if taken >= node.config.k or (not addresses and len(node.table)):
        answered = await _look_from_table(node)
        if answered or not addresses:
            return answered
    joined = 0
    for address in addresses:
        if await node.ping(address) is not None:
            joined += 1
    if joined:
        await node.lookup(node.node_id, keep_hearsay=True, meet_all=True)
        await _fill_and_check(node)
        if node.nursery is not None:
            node.nursery.start_soon(look_again, node)
    return joined


async def _look_from_table(node: DhtNode) -> int:
    """The self-lookup of a peer back with its table, to the alpha nearest; how many
    contacts answered it."""
    outcome = await node.lookup(
        node.node_id, count=node.config.alpha, keep_hearsay=True, meet_all=True
    )
    if outcome.contacts:
        await _fill_and_check(node)
    return len(outcome.contacts)


async def _fill_and_check(node: DhtNode) -> None:
    await fill_empty_buckets(node)
    check_unvouched_buckets(node)


def table_from_book(node: DhtNode) -> int:
    """Fill the routing table from the book's acquaintances, most recently heard first;
    how many it took.

    A peer back from a restart knew these first-hand (each answered at that very
    address), so its table starts with them, as heard then, rather than empty: its
    walks start near where they end, and what it hands out it can vouch for, instead
    of hearsay from its joining walk that it must dial back before anyone may hear of
    it (decision 0064). Some have left since: those fail their first call and go, as
    any contact that stops answering; a full bucket probes its quietest contact first.
    """
    taken = 0
    # A book of thousands feeds a table of a few hundred: ids with no room are passed
    # over before a contact is made of them.
    for contact, heard in node.peers.recent(node.table.may_place):
        if contact.node_id not in node.barred:
            taken += node.table.add_known(contact, heard)
    return taken


async def look_again(node: DhtNode) -> None:
    """Look ourselves up again once the peers met while joining have checked us
    (each check takes at most one RPC timeout): only to the alpha nearest, keeping
    what they name, since the first walk already asked the k nearest (decision 0049).
    A mesh smaller than k is walked whole again: it costs a few messages there, and a
    query that timed out on the first walk would otherwise leave a peer unmet until
    the hourly refresh."""
    await trio.sleep(2 * node.config.rpc_timeout)
    if len(node.table) < node.config.k:
        await node.lookup(node.node_id, meet_all=True)
    else:
        await node.lookup(node.node_id, count=node.config.alpha, keep_hearsay=True, meet_all=True)


async def fill_empty_buckets(node: DhtNode) -> None:
    """Ask for contacts in every empty bucket beyond our nearest neighbour.

    The self-lookup only walks our own neighbourhood; a bucket with no
    contact at all would strand lookups into that part of the id space.
    The paper refreshes those buckets with full lookups; one question to
    the contact nearest a random id in the bucket fills it almost always
    at a twentieth of the cost, and the periodic refresh mends the rest.
    """
    table = node.table
    for index in table.empty_buckets_beyond_nearest():
        if table.bucket_size(index):
            continue  # an earlier answer filled it already
        target = table.random_id_in_bucket(index, node.rng.getrandbits(160))
        for contact in table.closest(target, 1):
            reply = await node.call(contact, FindNode(target))
            if isinstance(reply, Nodes):
                node.learn_hearsay(reply.contacts)


def check_unvouched_buckets(node: DhtNode) -> None:
    """Dial back one contact of every bucket that holds only hearsay.

    A peer hands out only contacts that answered it (decision 0023). A bucket
    the joining walks filled with hearsay alone left it with no answer into
    that part of the id space: the first query there only queued the checks,
    and its asker walked to the wrong neighbourhood (decision 0060). Checked
    now, they can be vouched for by the time anyone asks. One per bucket is
    enough to lead a walk there (the peers of a joining walk answered moments
    ago), at a third of the cost; a query there checks more (decision 0074).
    """
    vouchable: dict[int, list[Contact]] = {}
    proven: set[int] = set()
    for contact in node.table:
        index = node.table.bucket_index(contact.node_id)
        if node.peers.verified(contact):
            proven.add(index)
        else:
            vouchable.setdefault(index, []).append(contact)
    for index, contacts in vouchable.items():
        if index not in proven:
            node._check(contacts[0])
