"""Which connection carries a request to a relayed peer, and what one dial-back check
of a contact counts against."""

from __future__ import annotations

from p2pbackup.dht.dial_back import DialBacks, check_key
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.dialer import DirectTries

RELAY = Route("198.51.100.1", 7000, bytes(20))


def test_a_direct_dial_is_tried_again_only_after_a_while() -> None:
    tries = DirectTries(retry_after=600.0)
    peer = Contact(b"\x01" * 20, "203.0.113.9", 7000, (Route("203.0.113.9", 7000),))
    assert tries.worth_trying(peer, now=0.0)
    tries.failed(peer.node_id, now=0.0)
    assert not tries.worth_trying(peer, now=599.0)
    assert tries.worth_trying(peer, now=600.0)


def test_a_peer_reached_only_through_relays_is_not_dialled_directly() -> None:
    hidden = Contact(b"\x02" * 20, "203.0.113.9", 7000, (RELAY,))
    assert not DirectTries().worth_trying(hidden, now=0.0)


def test_direct_failures_are_remembered_for_a_bounded_number_of_peers() -> None:
    tries = DirectTries(remembered=3)
    for i in range(5):
        tries.failed(bytes([i]) * 20, now=0.0)
    first = Contact(bytes([0]) * 20, "203.0.113.9", 7000)
    assert tries.worth_trying(first, now=1.0)  # forgotten: only the last three are kept


def test_two_peers_behind_one_nat_are_checked_apart_and_new_routes_anew() -> None:
    checks = DialBacks(cooldown=60.0)
    lan = Route("192.168.1.2", 7000)
    one = Contact(b"\x03" * 20, "203.0.113.9", 7000, (lan, RELAY))
    other = Contact(b"\x04" * 20, "203.0.113.9", 7000, (Route("192.168.1.3", 7000), RELAY))
    assert checks.offer(check_key(one), now=0.0)
    assert checks.offer(check_key(other), now=0.0)  # the same public address and port
    checks.done(check_key(one))
    assert not checks.offer(check_key(one), now=1.0)  # the same claim: cooldown
    moved = one.with_routes((lan, Route("198.51.100.2", 7000, bytes(20))))
    assert checks.offer(check_key(moved), now=1.0)  # another relay: a new claim


def test_a_contact_with_no_routes_is_checked_by_its_address_whatever_its_id() -> None:
    checks = DialBacks(cooldown=60.0)
    assert checks.offer(check_key(Contact(b"\x05" * 20, "203.0.113.7", 7000)), now=0.0)
    victim = Contact(b"\x06" * 20, "203.0.113.7", 7000)
    assert not checks.offer(check_key(victim), now=1.0)
