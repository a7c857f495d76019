"""Where a claimant would go, and when a refresh walks (decision 0074).

A peer that asked something is dialled back only where its bucket has room;
where the bucket is full and its oldest contact quiet, that oldest is probed
first, one probe per bucket at a time, and only its failure makes room. A
refresh leaves out empty buckets nearer than the k-th nearest contact.
"""

from __future__ import annotations

from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.routing import AddOutcome, RoutingTable
from p2pbackup.net.contact import Contact

LOCAL = bytes(NODE_ID_BYTES)
QUIET = 3600.0


def _contact(bucket: int, low: int) -> Contact:
    distance = (1 << bucket) | low
    return Contact(distance.to_bytes(NODE_ID_BYTES, "big"), f"10.0.{low}.{bucket}", 4000)


def _full_far_bucket() -> tuple[RoutingTable, list[Contact]]:
    table = RoutingTable(LOCAL, k=2, questionable_after=QUIET)
    held = [_contact(159, 1), _contact(159, 2)]
    for contact in held:
        assert table.add(contact, 0.0).outcome is AddOutcome.ADDED
    return table, held


def test_a_claimant_waits_for_the_probe_of_a_quiet_oldest() -> None:
    table, (oldest, _) = _full_far_bucket()
    newcomer, another = _contact(159, 3), _contact(159, 4)
    room = table.room_for(newcomer, QUIET + 1)
    assert room.outcome is AddOutcome.PENDING and room.ping == oldest
    table.probing(oldest)
    assert table.room_for(another, QUIET + 1).ping is None  # one probe at a time
    assert table.remove(oldest.node_id)  # it failed its probe
    assert table.room_for(newcomer, QUIET + 2).outcome is AddOutcome.ADDED


def test_a_bucket_heard_lately_has_no_room_and_no_probe() -> None:
    table, held = _full_far_bucket()
    room = table.room_for(_contact(159, 3), QUIET - 1)
    assert room.outcome is AddOutcome.PENDING and room.ping is None
    assert table.room_for(held[1], QUIET - 1).outcome is AddOutcome.ADDED  # known already
    assert table.room_for(_contact(150, 1), QUIET - 1).outcome is AddOutcome.ADDED  # room


def test_refresh_skips_empty_buckets_among_the_k_nearest() -> None:
    table = RoutingTable(LOCAL, k=3)
    for bucket, low in [(2, 1), (5, 1), (7, 1), (9, 1), (12, 1)]:
        table.add(_contact(bucket, low), 0.0)
    stale = table.stale_buckets(10.0, 1.0)
    # The third nearest contact sits in bucket 7: the empty buckets 3, 4 and 6 are left out.
    assert stale[:6] == [2, 5, 7, 8, 9, 10]
    assert stale[-1] == 159
    table.remove(_contact(5, 1).node_id)  # now the third nearest is in bucket 9
    assert table.stale_buckets(10.0, 1.0)[:4] == [2, 7, 9, 10]
