"""What a FIND_NODE answer hands out: first-hand contacts only, and to an asker outside
any LAN none it could dial only on someone's LAN."""

from __future__ import annotations

import random
from typing import cast

import trio

from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.messages import FindNode, Nodes
from p2pbackup.dht.node import DhtNode
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.transport import Remote, Transport

RELAY = Route("198.51.100.1", 7000, bytes([9]) * 20)
LAN_ONLY = Contact(bytes([1]) * 20, "192.168.20.12", 7000)  # a NATed peer before its relays
RELAYED = Contact(bytes([2]) * 20, "203.0.113.9", 7000, (Route("192.168.20.11", 7000), RELAY))
PUBLIC = Contact(bytes([3]) * 20, "198.51.100.7", 7000)
MAPPED = Contact(bytes([4]) * 20, "198.51.100.8", 7000, (Route("198.51.100.8", 7000),))


def _node() -> DhtNode:
    node = DhtNode(cast(Transport, None), bytes([0x80]) * 20, DhtConfig(), random.Random(1))
    for contact in (LAN_ONLY, RELAYED, PUBLIC, MAPPED):
        node.table.add(contact, trio.current_time())
        node.peers.answered(contact, trio.current_time())  # each answered us first-hand
    return node


async def _handed_out(node: DhtNode, far: tuple[str, int] | None) -> set[bytes]:
    asker = Remote(bytes([0x55]) * 20, bytes(32), None, far=far)
    reply = await node.handle(asker, FindNode(bytes(20)))
    assert isinstance(reply, Nodes)
    return {contact.node_id for contact in reply.contacts}


async def test_an_asker_from_the_internet_gets_no_contact_dialable_only_on_a_lan() -> None:
    handed = await _handed_out(_node(), ("198.18.0.9", 40123))
    assert handed == {RELAYED.node_id, PUBLIC.node_id, MAPPED.node_id}


async def test_an_asker_on_a_lan_or_through_a_relay_gets_every_first_hand_contact() -> None:
    everyone = {c.node_id for c in (LAN_ONLY, RELAYED, PUBLIC, MAPPED)}
    assert await _handed_out(_node(), ("192.168.20.40", 40123)) == everyone
    assert await _handed_out(_node(), ("127.0.0.1", 40123)) == everyone
    assert await _handed_out(_node(), None) == everyone  # came through a relay: unknown
