"""Which open connection carries the requests to a peer: the direct one first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from p2pbackup.net.connection import Connection
from p2pbackup.net.connection_index import ConnectionIndex

PEER = b"\x01" * 20
ADDRESS = ("192.0.2.1", 7000)


@dataclass(frozen=True)
class _Remote:
    node_id: bytes


@dataclass
class _Conn:
    relayed: bool
    closed: bool = False
    remote: _Remote = _Remote(PEER)


def _conn(relayed: bool) -> Connection:
    return cast(Connection, _Conn(relayed))


def test_a_direct_connection_the_peer_opens_takes_the_place_of_a_relayed_one() -> None:
    index, relayed, direct, probe = ConnectionIndex(), _conn(True), _conn(False), _conn(False)
    index.dialled(ADDRESS, relayed)
    index.accepted(direct)  # a peer behind a NAT, holding a reservation at this relay
    assert index.to_node(PEER) is direct
    index.accepted(probe)  # a dial-back probe, soon closed: the open direct one stays
    assert index.to_node(PEER) is direct


def test_a_relayed_connection_dialled_later_does_not_displace_a_direct_one() -> None:
    index, direct, relayed = ConnectionIndex(), _conn(False), _conn(True)
    index.accepted(direct)
    index.dialled(ADDRESS, relayed)
    assert index.to_node(PEER) is direct and index.at_address(ADDRESS) is relayed
    assert len(index.every()) == 2


def test_when_the_connection_in_use_ends_another_open_one_carries_on_direct_first() -> None:
    index, first, relayed, direct = ConnectionIndex(), _conn(False), _conn(True), _conn(False)
    index.accepted(first)
    index.accepted(relayed)
    index.accepted(direct)
    assert index.to_node(PEER) is first
    cast(_Conn, first).closed = True
    index.ended(first, [first, relayed, direct])
    assert index.to_node(PEER) is direct and index.connected_to(PEER)
    cast(_Conn, direct).closed = True
    cast(_Conn, relayed).closed = True
    index.ended(direct, [relayed, direct])
    assert index.to_node(PEER) is None and not index.connected_to(PEER)
