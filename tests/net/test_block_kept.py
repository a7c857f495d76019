"""A contact keeps its address block, and the block still follows the exemptions asked
with: one contact object crosses peers whose meshes exempt different kinds."""

from __future__ import annotations

from dataclasses import replace

from p2pbackup.net.blocks import LAN, LOOPBACK, block_at, block_of
from p2pbackup.net.contact import Contact


def test_a_kept_block_follows_the_exemptions_it_is_asked_with() -> None:
    contact = Contact(bytes(20), "127.0.0.7", 4000)
    loopback, lan = frozenset({LOOPBACK}), frozenset({LAN})
    for exempt in (frozenset(), loopback, lan, loopback, frozenset()):
        assert block_of(contact, exempt) == block_at("127.0.0.7", 4000, exempt)
    assert block_of(contact, loopback) == "own:127.0.0.7:4000"
    assert block_of(contact, lan) == "net:127.0.0.0/24"


def test_a_kept_block_is_no_part_of_the_contact() -> None:
    contact = Contact(bytes(20), "10.1.2.3", 4000)
    block_of(contact)
    fresh = Contact(bytes(20), "10.1.2.3", 4000)
    assert contact == fresh and hash(contact) == hash(fresh)
    assert "_block" not in repr(contact)
    moved = replace(contact, host="10.9.9.9")
    assert block_of(moved) == "net:10.9.9.0/24"
