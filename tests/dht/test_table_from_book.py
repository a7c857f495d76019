"""A restarted peer's routing table starts from its book of acquaintances (decision 0064).

The book keeps who answered at which address, with the routes each named, across a
restart; the table takes back the freshest k of each bucket, least recently heard
first in line, and never more than a bucket holds.
"""

from __future__ import annotations

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.peer_book import PeerBook
from p2pbackup.dht.routing import RoutingTable
from p2pbackup.net.contact import Contact, Route

LOCAL = bytes(NODE_ID_BYTES)
K = 3


def _far(i: int) -> Contact:
    """Contacts all in the farthest bucket (top bit set), each in a block of its own."""
    node_id = (1 << 159 | i).to_bytes(NODE_ID_BYTES, "big")
    return Contact(node_id, f"10.0.{i}.1", 4000)


def test_the_book_yields_the_most_recent_first_with_their_routes() -> None:
    book = PeerBook()
    relayed = Contact(_far(2).node_id, "10.0.2.1", 4000, (Route("10.9.9.1", 4000, bytes(20)),))
    book.answered(_far(1), 1.0)
    book.answered(relayed, 2.0)
    book.answered(_far(2), 3.0)  # answered again without naming routes: they are kept
    assert [(c, heard) for c, heard in book.recent()] == [(relayed, 3.0), (_far(1), 1.0)]


def test_routes_survive_a_restart_and_rows_without_them_still_load() -> None:
    book = PeerBook()
    relayed = Contact(_far(2).node_id, "10.0.2.1", 4000, (Route("10.9.9.1", 4000, bytes(20)),))
    book.answered(_far(1), 1.0)
    book.answered(relayed, 2.0)
    rows = book.to_plain(100.0)
    again = PeerBook()
    again.load_plain(rows, 100.0, 50.0)
    assert list(again.recent()) == list(book.recent())
    older = PeerBook()
    older.load_plain([row[:5] for row in rows], 100.0, 50.0)  # saved before routes were
    assert [c for c, _ in older.recent()] == [Contact(relayed.node_id, *relayed.address), _far(1)]


def test_a_table_takes_the_freshest_k_of_a_bucket_and_probes_the_oldest_first() -> None:
    table = RoutingTable(LOCAL, K)
    heard = {_far(i): float(i) for i in range(6)}
    fed = sorted(heard, key=heard.__getitem__, reverse=True)  # as the book gives them
    assert [table.add_known(c, heard[c]) for c in fed] == [True] * K + [False] * 3
    assert list(table) == [_far(3), _far(4), _far(5)]  # least recently heard first
    assert table.heard(_far(3).node_id) == 3.0


def test_a_known_contact_never_displaces_one_in_the_table() -> None:
    table = RoutingTable(LOCAL, K)
    for i in range(K):
        table.add(_far(i), 10.0)
    assert not table.add_known(_far(9), 20.0)
    assert not table.add_known(_far(0), 20.0)  # already there: left as it was
    assert table.heard(_far(0).node_id) == 10.0
    assert _far(9).node_id not in table


def test_the_book_skips_ids_the_table_has_no_room_for_before_making_contacts() -> None:
    table = RoutingTable(LOCAL, K)
    book = PeerBook()
    for i in range(6):
        book.answered(_far(i), float(i))
    taken = [c for c, _ in book.recent(table.may_place) if table.add_known(c, 0.0)]
    assert taken == [_far(5), _far(4), _far(3)]  # the freshest k; the bucket is then full
    assert not any(table.may_place(_far(i).node_id) for i in range(8))
    assert not table.may_place(LOCAL)
    near = (1 << 3).to_bytes(NODE_ID_BYTES, "big")  # another bucket, still empty
    assert table.may_place(near)
