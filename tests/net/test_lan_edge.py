"""The edge of LAN discovery without a network: what it announces, and how zeroconf's
thread hands names to trio (bounded, never blocking that thread)."""

from __future__ import annotations

import ipaddress

import trio
import trio.testing
from zeroconf import ServiceStateChange

from p2pbackup.net.lan_announce import OPEN_TAG, Finding
from p2pbackup.net.lan_discovery import QUEUED_NAMES, LanDiscovery, plan_for

INTERFACES = [
    ("127.0.0.1", 8),
    ("192.168.1.20", 24),
    ("10.1.2.3", 16),
    ("::1", 128),
    ("fe80::1", 64),
    ("2001:db8::5", 64),
]


def test_a_peer_on_loopback_or_a_name_announces_nothing() -> None:
    assert plan_for("127.0.0.1", INTERFACES).addresses == ()
    assert plan_for("::1", INTERFACES).addresses == ()
    assert plan_for("peer.example", INTERFACES).addresses == ()


def test_a_peer_announces_the_address_it_listens_on() -> None:
    plan = plan_for("192.168.1.20", INTERFACES)
    assert plan.addresses == ("192.168.1.20",)
    assert plan.networks == (ipaddress.ip_network("192.168.1.0/24"),)


def test_a_wildcard_announces_every_lan_interface() -> None:
    assert plan_for("0.0.0.0", INTERFACES).addresses == ("192.168.1.20", "10.1.2.3")
    assert plan_for("[::]", INTERFACES).addresses == ("192.168.1.20", "10.1.2.3", "2001:db8::5")


def _discovery() -> LanDiscovery:
    return LanDiscovery(bytes(20), ("192.168.1.20", 7400), OPEN_TAG, lambda f: None)


def _names(discovery: LanDiscovery) -> list[str]:
    names = []
    while True:
        try:
            names.append(discovery._names.receive_nowait())
        except trio.WouldBlock:
            return names


async def test_names_from_zeroconfs_thread_reach_trio_once_each_and_bounded() -> None:
    discovery = _discovery()
    discovery._token = trio.lowlevel.current_trio_token()

    def from_another_thread() -> None:
        for i in range(3 * QUEUED_NAMES):
            name = f"n{i}._p2pbackup._tcp.local."
            discovery._changed(None, "_p2pbackup._tcp.local.", name, ServiceStateChange.Added)
            discovery._changed(None, "_p2pbackup._tcp.local.", name, ServiceStateChange.Updated)
        discovery._changed(None, "", "gone._p2pbackup._tcp.local.", ServiceStateChange.Removed)

    await trio.to_thread.run_sync(from_another_thread)
    await trio.testing.wait_all_tasks_blocked()
    names = _names(discovery)
    assert names == [f"n{i}._p2pbackup._tcp.local." for i in range(QUEUED_NAMES)]


async def test_a_peer_on_loopback_starts_and_stops_without_opening_anything() -> None:
    found: list[Finding] = []
    discovery = LanDiscovery(bytes(20), ("127.0.0.1", 7400), OPEN_TAG, found.append)
    async with trio.open_nursery() as nursery:
        await nursery.start(discovery.run)  # returns at once: nothing to announce
    assert found == []
