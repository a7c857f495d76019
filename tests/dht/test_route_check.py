"""Checking a claimed contact by dialling it: its routes raced, every per-address slot
given back, and a NATed peer's LAN address no longer costing the whole RPC timeout."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import trio
import trio.testing

from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.dial_back import DialBacks
from p2pbackup.dht.messages import Pong
from p2pbackup.dht.node import DhtNode
from p2pbackup.dht.route_check import check_routes
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.stagger import RELAY_STAGGER
from p2pbackup.net.transport import Remote, Reply
from p2pbackup.wire.messages import Message

PEER = bytes([7]) * 20
LAN = Route("192.168.1.2", 7000)
RELAY = Route("198.51.100.1", 7000, bytes([9]) * 20)


@dataclass
class Network:
    """Direct dials to `swallowed` addresses hang until their timeout; relays answer
    when `relays_answer`; every dial is logged with when it began."""

    swallowed: set[tuple[str, int]]
    relays_answer: bool = True
    dials: list[tuple[object, float]] = field(default_factory=list)

    async def request(
        self, target: Any, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply:
        self.dials.append((target if isinstance(target, tuple) else "relay", trio.current_time()))
        if isinstance(target, tuple):
            if target in self.swallowed:
                await trio.sleep(timeout)
                raise PeerUnreachable(f"{target} did not answer within {timeout:g}s")
            return Reply(Remote(PEER, bytes(32), target), Pong(), target)
        if not self.relays_answer:
            raise PeerUnreachable("no relay holds it")
        return Reply(Remote(PEER, bytes(32), None), Pong(), target.address)


@dataclass
class Node:
    transport: Network
    config: DhtConfig = field(default_factory=lambda: DhtConfig(rpc_timeout=5.0))
    proved: list[object] = field(default_factory=list)

    def _first_hand(self, dialled: Contact, reply: Reply, at: object = None) -> bool:
        self.proved.append(at or "relay")
        return True


async def test_a_natted_peer_is_checked_through_its_relay_without_waiting_out_its_lan_address(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = Network(swallowed={LAN.address})
    node, dial_backs = Node(network), DialBacks(cooldown=60.0)
    contact = Contact(PEER, "203.0.113.9", 7000, (LAN, RELAY))
    assert await check_routes(cast(DhtNode, node), contact, dial_backs) is True
    assert node.proved == ["relay"]
    assert [where for where, _ in network.dials] == [LAN.address, "relay"]
    assert trio.current_time() == pytest.approx(RELAY_STAGGER)  # not the 5 s RPC timeout
    assert not dial_backs.pending  # the LAN dial, cancelled, gave its slot back


async def test_a_contact_no_route_proves_is_not_checked_and_holds_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    network = Network(swallowed={LAN.address}, relays_answer=False)
    node, dial_backs = Node(network), DialBacks(cooldown=60.0)
    contact = Contact(PEER, "203.0.113.9", 7000, (LAN, RELAY))
    assert await check_routes(cast(DhtNode, node), contact, dial_backs) is False
    assert node.proved == [] and not dial_backs.pending
    assert trio.current_time() == pytest.approx(5.0)  # the LAN dial ran out its time


async def test_a_direct_route_that_answers_proves_the_contact_at_that_route(
    autojump_clock: trio.testing.MockClock,
) -> None:
    node = Node(Network(swallowed=set()))
    contact = Contact(PEER, "203.0.113.9", 7000, (LAN, RELAY))
    assert await check_routes(cast(DhtNode, node), contact, DialBacks(cooldown=60.0)) is True
    assert node.proved == [LAN.address]  # the relay was never asked


async def test_nothing_is_dialled_when_every_address_was_checked_lately() -> None:
    dial_backs = DialBacks(cooldown=60.0)
    assert dial_backs.offer(LAN.address, trio.current_time())
    dial_backs.done(LAN.address)
    network = Network(swallowed=set())
    contact = Contact(PEER, "203.0.113.9", 7000, (LAN,))
    assert await check_routes(cast(DhtNode, Node(network)), contact, dial_backs) is None
    assert network.dials == []
