"""The peer book's whole-reply check agrees with its one-contact check, and a remote's
contact, made once, still follows what the remote says."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from p2pbackup.dht.peer_book import PeerBook
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.transport import Remote

IDS = [bytes([i]) * 20 for i in range(6)]
HOSTS = ["10.0.0.1", "10.0.0.2"]

contacts = st.builds(
    Contact, st.sampled_from(IDS), st.sampled_from(HOSTS), st.sampled_from([4000, 4001])
)


@given(
    answered=st.lists(contacts, max_size=8),
    fresh=st.lists(contacts, max_size=12),
    picks=st.lists(st.integers(min_value=0), max_size=12),
)
def test_unverified_is_what_verified_says_of_each(
    answered: list[Contact], fresh: list[Contact], picks: list[int]
) -> None:
    """Asked of contacts made apart and of the very objects that answered (the book
    knows those by identity), in any mix."""
    book = PeerBook()
    for when, contact in enumerate(answered):
        book.answered(contact, float(when))
    asked = fresh + [answered[i % len(answered)] for i in picks if answered]
    expected = [
        c for c in asked if any(c.node_id == a.node_id for a in answered) and _last_at(answered, c)
    ]
    assert [c for c in asked if book.verified(c)] == expected
    assert book.unverified(asked) == [c for c in asked if not book.verified(c)]


def _last_at(answered: list[Contact], contact: Contact) -> bool:
    """Did the id last answer at the contact's address?"""
    last = [a for a in answered if a.node_id == contact.node_id][-1]
    return (last.host, last.port) == (contact.host, contact.port)


def test_all_answered_at_their_address_is_none_unverified() -> None:
    book = PeerBook()
    known = [Contact(node_id, "10.0.0.1", 4000) for node_id in IDS]
    for contact in known:
        book.answered(contact, 1.0)
    assert book.unverified(known) == []
    moved = replace(known[3], port=4001)
    stranger = Contact(bytes([9]) * 20, "10.0.0.1", 4000)
    assert book.unverified([*known, moved, stranger]) == [moved, stranger]


def test_a_remotes_contact_is_made_once_and_follows_a_replaced_remote() -> None:
    remote = Remote(IDS[0], b"k" * 32, ("10.0.0.1", 4000))
    first = remote.contact()
    assert first == Contact(IDS[0], "10.0.0.1", 4000)
    assert remote.contact() is first
    routed = replace(remote, routes=(Route("10.9.9.1", 4000),))
    assert routed.contact() == Contact(IDS[0], "10.0.0.1", 4000, (Route("10.9.9.1", 4000),))
    moved = replace(remote, listen=("10.0.0.2", 4001))
    assert moved.contact() == Contact(IDS[0], "10.0.0.2", 4001)
    assert replace(remote, listen=None).contact() is None
    assert remote == replace(remote)  # the kept contact is no part of what a remote is
