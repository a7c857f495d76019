"""Reachability, sans-IO: the observed-address tally, the verdict, what is advertised,
the dial order, and the rules a dial-back checker follows."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.dht.dial_me_back import refusal
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.dialer import dial_order
from p2pbackup.net.interfaces import Interface, usable_hosts, well_formed_host
from p2pbackup.net.observed import ObservedTally
from p2pbackup.net.reachability import Reachability, needed

RELAY = bytes(range(20))
HOME = (
    Interface(ipaddress.ip_address("127.0.0.1"), ipaddress.ip_network("127.0.0.0/8")),
    Interface(ipaddress.ip_address("192.168.1.20"), ipaddress.ip_network("192.168.1.0/24")),
    Interface(ipaddress.ip_address("fe80::1"), ipaddress.ip_network("fe80::/64")),
)


# ---- the observed-address tally ------------------------------------------


def test_one_block_cannot_make_an_observed_address_count() -> None:
    tally = ObservedTally()
    for _ in range(50):  # fifty liars of one network
        tally.report("198.51.100.66", "net:203.0.113.0/24", 0.0)
    assert tally.hosts_seen(0.0) == []
    assert tally.report("203.0.113.5", "net:198.51.100.0/24", 1.0) is False
    assert tally.report("203.0.113.5", "net:192.0.2.0/24", 2.0) is True
    assert tally.hosts_seen(2.0) == ["203.0.113.5"]


def test_observed_reports_expire() -> None:
    tally = ObservedTally(ttl=10.0)
    tally.report("203.0.113.5", "a", 0.0)
    tally.report("203.0.113.5", "b", 1.0)
    assert tally.hosts_seen(5.0) == ["203.0.113.5"]
    assert tally.hosts_seen(10.5) == []  # a's report is too old: one block left


@given(st.lists(st.tuples(st.integers(0, 99), st.integers(0, 99)), max_size=300))
def test_the_tally_stays_bounded(reports: list[tuple[int, int]]) -> None:
    tally = ObservedTally(hosts=16, blocks_per_host=8)
    for now, (host, block) in enumerate(reports):
        tally.report(f"10.0.0.{host}", f"block{block}", float(now))
    assert len(tally.all_reported()) <= 16
    assert all(len(blocks) <= 8 for blocks in tally._reports.values())


# ---- the verdict and what is advertised ------------------------------------


def test_a_single_peer_is_unknown_until_checked() -> None:
    state = Reachability(("127.0.0.1", 7000))
    assert state.state(0.0) == "unknown"
    assert state.detail(0.0) == "unknown: no peer has checked yet"
    assert state.due(0.0) == [("127.0.0.1", 7000)]
    assert state.main_address(0.0) == ("127.0.0.1", 7000) and state.routes(0.0) == ()


def test_two_confirmations_are_needed_when_two_peers_could_be_asked() -> None:
    assert [needed(n) for n in (1, 2, 3)] == [1, 2, 2]
    state = Reachability(("203.0.113.5", 7000))
    state.checked(("203.0.113.5", 7000), 1, 3, 0.0, "connection refused")
    assert state.state(0.0) == "unknown"
    assert "203.0.113.5:7000 not reachable (1 of 3 peers could dial it" in state.detail(0.0)
    state.checked(("203.0.113.5", 7000), 2, 3, 1.0)
    assert state.state(1.0) == "public"
    assert state.detail(1.0) == "reachable at 203.0.113.5:7000 (public)"


def test_listening_anywhere_names_the_best_interface_until_something_is_confirmed() -> None:
    state = Reachability(("0.0.0.0", 7000), interfaces=HOME)
    assert usable_hosts(HOME, "0.0.0.0") == ["192.168.1.20", "127.0.0.1"]
    assert state.main_address(0.0) == ("192.168.1.20", 7000)
    # The LAN address is for same-LAN dialers: never checked from outside; loopback is
    # named only when there is nothing else.
    assert state.due(0.0) == []
    for block in ("a", "b"):
        state.observed("203.0.113.5", block, 0.0)
    assert ("203.0.113.5", 7000) in state.due(0.0)
    state.checked(("203.0.113.5", 7000), 2, 2, 1.0)
    assert state.state(1.0) == "public"
    assert state.main_address(1.0) == ("203.0.113.5", 7000)
    # Confirmed first, then the LAN address for dialers on the same LAN.
    assert state.routes(1.0) == (Route("203.0.113.5", 7000), Route("192.168.1.20", 7000))


def test_only_loopback_is_named_when_there_is_nothing_else() -> None:
    only = (HOME[0],)
    assert Reachability(("0.0.0.0", 7000), interfaces=only).main_address(0.0) == (
        "127.0.0.1",
        7000,
    )
    v6 = Interface(ipaddress.ip_address("2001:db8::5"), ipaddress.ip_network("2001:db8::/64"))
    state = Reachability(("::", 7000), interfaces=(*HOME, v6))
    assert state.main_address(0.0) == ("2001:db8::5", 7000)


def test_an_advertised_address_is_named_first_and_checked_like_any() -> None:
    state = Reachability(
        ("0.0.0.0", 7000), advertised=[("peer.example.org", 7100)], interfaces=HOME
    )
    assert state.main_address(0.0) == ("peer.example.org", 7100)
    assert state.due(0.0) == [("peer.example.org", 7100)]  # interfaces: the owner said how
    state.failed(("peer.example.org", 7100), "peer.example.org does not resolve", 0.0)
    assert state.confirmed(0.0) == [] and state.state(0.0) == "unknown"
    assert "does not resolve" in state.detail(0.0)


def test_a_mapped_address_confirmed_is_mapped() -> None:
    state = Reachability(("192.168.1.20", 7000), interfaces=HOME)
    assert state.due(0.0) == []  # a LAN address alone: nothing to check from outside
    state.set_mapped(("203.0.113.5", 41000))
    assert state.due(0.0) == [("203.0.113.5", 41000)]
    state.checked(("203.0.113.5", 41000), 2, 2, 1.0)
    assert state.state(1.0) == "mapped"
    assert state.main_address(1.0) == ("203.0.113.5", 41000)
    state.set_mapped(None)  # the router forgot it
    assert state.state(2.0) == "unknown"


def test_a_peer_nobody_can_dial_is_relayed_and_named_by_its_observed_address() -> None:
    state = Reachability(("0.0.0.0", 7000), interfaces=HOME)
    changes: list[int] = []
    state.on_change = lambda: changes.append(1)
    for block in ("a", "b"):
        state.observed("198.51.100.7", block, 0.0)
    state.checked(("198.51.100.7", 7000), 0, 2, 1.0)
    state.checked(("127.0.0.1", 7000), 0, 2, 1.0)
    relay = Route("203.0.113.9", 7000, RELAY)
    state.set_relays([relay])
    assert changes == [1, 1]  # the new observed address, the relay
    assert state.state(2.0) == "relayed"
    assert state.main_address(2.0) == ("198.51.100.7", 7000)  # its real address block
    assert state.routes(2.0) == (Route("192.168.1.20", 7000), relay)
    assert state.detail(2.0).startswith("relayed through relay:")


def test_checked_candidates_come_due_again() -> None:
    state = Reachability(("203.0.113.5", 7000), recheck=100.0)
    assert state.next_due(0.0) == 0.0
    state.checked(("203.0.113.5", 7000), 2, 2, 0.0)
    assert state.due(50.0) == [] and state.due(100.0) == [("203.0.113.5", 7000)]
    assert state.next_due(50.0) == 100.0
    # A candidate that went away (an observed address no longer reported) is not waited on.
    state.results[("198.51.100.1", 7000)] = state.results[("203.0.113.5", 7000)]
    state.checked(("203.0.113.5", 7000), 2, 2, 60.0)
    assert state.next_due(70.0) == 160.0


def test_a_failed_check_is_tried_again_sooner_and_less_often_each_time() -> None:
    state = Reachability(("203.0.113.5", 7000), recheck=100.0)
    here = ("203.0.113.5", 7000)
    state.checked(here, 0, 2, 0.0)  # both checkers too busy to dial back in time
    assert state.state(1.0) == "unknown"
    assert state.next_due(1.0) == 20.0 and state.due(19.0) == [] and state.due(20.0) == [here]
    state.checked(here, 1, 2, 20.0)
    assert state.next_due(21.0) == 60.0  # 40 s after the second failure
    state.checked(here, 0, 2, 60.0)
    state.checked(here, 0, 2, 140.0)
    assert state.next_due(141.0) == 240.0  # never longer apart than a confirmed one
    state.checked(here, 2, 2, 240.0)
    assert state.state(241.0) == "public" and state.next_due(241.0) == 340.0
    state.checked(here, 0, 2, 340.0)  # failing again after a success starts over
    assert state.next_due(341.0) == 360.0


# ---- the dial order ----------------------------------------------------------


def test_same_lan_routes_come_first_then_direct_then_relays() -> None:
    relay = Route("203.0.113.9", 7000, RELAY)
    public, lan, elsewhere = (
        Route("198.51.100.7", 7000),
        Route("192.168.1.30", 7000),
        Route("10.9.9.9", 7000),
    )
    contact = Contact(bytes(20), "198.51.100.7", 7000, (relay, public, elsewhere, lan))
    assert dial_order(contact, HOME) == [lan, public, elsewhere, relay]
    assert dial_order(contact) == [public, elsewhere, lan, relay]  # no interfaces known
    assert dial_order(Contact(bytes(20), "198.51.100.7", 7000)) == [public]


hosts = st.sampled_from(["192.168.1.30", "198.51.100.7", "10.1.2.3", "::1", "peer.example.org"])
route_lists = st.lists(
    st.builds(Route, hosts, st.integers(1, 65535), st.none() | st.just(RELAY)),
    min_size=1,
    max_size=8,
)


@given(route_lists)
def test_the_dial_order_keeps_every_route_and_puts_relays_last(routes: list[Route]) -> None:
    order = dial_order(Contact(bytes(20), "198.51.100.7", 7000, tuple(routes)), HOME)
    assert sorted(map(str, order)) == sorted(map(str, routes))
    kinds = [route.relay is not None for route in order]
    assert kinds == sorted(kinds)


# ---- what a dial-back checker dials ----------------------------------------


@pytest.mark.parametrize(
    ("far", "target", "allowed"),
    [
        (("198.51.100.7", 50000), ("198.51.100.7", 7000), True),  # the asker's own host
        (("198.51.100.7", 50000), ("198.51.100.8", 7000), False),  # a neighbour: no
        (("198.51.100.7", 50000), ("203.0.113.1", 80), False),  # a victim elsewhere
        (("127.0.0.1", 50000), ("127.0.0.5", 7000), True),  # loopback, from loopback
        (("192.168.1.30", 50000), ("192.168.1.31", 7000), True),  # its own LAN block
        (("198.51.100.7", 50000), ("192.168.1.31", 7000), False),  # someone's LAN: no
        (("198.51.100.7", 50000), ("127.0.0.1", 22), False),  # the checker itself: no
        (("::1", 50000), ("::1", 7000), True),
        (("2001:db8::1", 50000), ("2001:db8::2", 7000), False),
        (("::ffff:198.51.100.7", 50000), ("198.51.100.7", 7000), True),
        (None, ("198.51.100.7", 7000), False),  # came through a relay: nothing to compare
        (("198.51.100.7", 50000), ("peer.example.org", 7000), False),  # names: never
    ],
)
def test_a_checker_dials_only_the_askers_own_address(
    far: tuple[str, int] | None, target: tuple[str, int], allowed: bool
) -> None:
    assert (refusal(far, target) is None) is allowed


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("peer.example.org", True),
        ("203.0.113.5", True),
        ("::1", True),
        ("localhost", True),
        ("not..valid", False),
        ("-bad.example", False),
        ("under_score.example", False),
        ("x" * 64 + ".example", False),
        ("", False),
    ],
)
def test_advertised_names_must_be_well_formed(host: str, ok: bool) -> None:
    assert well_formed_host(host) is ok
