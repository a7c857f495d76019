"""When the routing table stands for the whole mesh, and when it stops doing so."""

from __future__ import annotations

import pytest

from p2pbackup.net.contact import Contact
from p2pbackup.shares.whole_mesh import WholeMesh


def contact(n: int) -> Contact:
    return Contact(bytes([n]) * 32, "127.0.0.1", 4000 + n)


IDS = frozenset(contact(n).node_id for n in range(9))
FOUND = [contact(n) for n in range(9)]


def test_a_lookup_that_found_fewer_than_it_wanted_all_in_the_table_stands_for_the_mesh() -> None:
    whole = WholeMesh(60.0)
    whole.learn(FOUND, 20, (), IDS, now=100.0)
    assert whole.holds(IDS, 159.0)
    assert not whole.holds(IDS, 160.0)  # past its time: look up again
    assert not whole.holds(IDS - {contact(3).node_id}, 120.0)  # the table changed
    assert not whole.holds(IDS | {b"\xee" * 32}, 120.0)


def test_peers_passed_over_as_suspect_count_as_known() -> None:
    whole = WholeMesh(60.0)
    whole.learn(FOUND[:7], 20, (contact(7).node_id, contact(8).node_id), IDS, now=0.0)
    assert whole.holds(IDS, 1.0)


@pytest.mark.parametrize(
    ("found", "wanted", "skipped", "why"),
    [
        (FOUND, 9, (), "found as many as it wanted: there may be more"),
        (FOUND[:8], 20, (), "a table contact did not answer"),
        ([*FOUND, contact(42)], 20, (), "a peer the table does not hold"),
    ],
)
def test_a_lookup_that_may_have_missed_peers_stands_for_nothing(
    found: list[Contact], wanted: int, skipped: tuple[bytes, ...], why: str
) -> None:
    whole = WholeMesh(60.0)
    whole.learn(FOUND, 20, (), IDS, now=0.0)
    whole.learn(found, wanted, skipped, IDS, now=1.0)
    assert not whole.holds(IDS, 2.0), why


def test_no_time_to_live_never_stands_and_forget_ends_it() -> None:
    never = WholeMesh(0.0)
    never.learn(FOUND, 20, (), IDS, now=0.0)
    assert not never.holds(IDS, 0.0)
    whole = WholeMesh(60.0)
    whole.learn(FOUND, 20, (), IDS, now=0.0)
    whole.forget()
    assert not whole.holds(IDS, 1.0)
    with pytest.raises(ValueError):
        WholeMesh(-1.0)
