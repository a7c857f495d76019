"""A replica keeps records within a byte budget per owner and in total, and only near its id."""

from __future__ import annotations

import pytest

from p2pbackup.base.ids import distance
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.record_store import RecordStore, near_key, record_bytes
from p2pbackup.dht.records import MAX_VALUE, set_record, value_record
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact

BIG = [bytes([i]) * MAX_VALUE for i in range(32)]  # 32 x 64 KiB: the 2 MiB record limit


def test_an_owner_past_its_budget_is_refused_and_others_still_fit() -> None:
    store = RecordStore(owner_budget=5 * 1024 * 1024, total_budget=64 * 1024 * 1024)
    hog = Identity.generate()
    store.put(set_record(hog, b"a", BIG))
    store.put(set_record(hog, b"b", BIG))
    with pytest.raises(RecordRejected, match="per owner"):
        store.put(set_record(hog, b"c", BIG))
    assert len(store) == 2 and store.owner_bytes(hog.public_key) <= store.owner_budget
    other = Identity.generate()
    store.put(value_record(other, b"index", 1, b"x" * 100))
    assert store.get(value_record(other, b"index", 1, b"").key) is not None


def test_many_owners_are_bounded_by_the_total_budget() -> None:
    store = RecordStore(total_budget=5 * 1024 * 1024)
    refused = 0
    for n in range(4):
        try:
            store.put(set_record(Identity.generate(), b"junk%d" % n, BIG))
        except RecordRejected as exc:
            assert "bytes of records" in str(exc)
            refused += 1
    assert refused == 2 and store.total_bytes <= store.total_budget


def test_an_update_is_charged_only_for_what_it_adds() -> None:
    store = RecordStore(owner_budget=3 * 1024 * 1024)
    owner = Identity.generate()
    store.put(set_record(owner, b"set", BIG[:20]))
    before = store.total_bytes
    # The same entries again, plus ten more: only the ten are new bytes.
    merged = store.put(set_record(owner, b"set", BIG[:30]))
    assert store.total_bytes == record_bytes(merged) == store.owner_bytes(owner.public_key)
    assert store.total_bytes > before


def _contacts(ids: list[bytes]) -> list[Contact]:
    return [Contact(i, "10.0.0.1", 4000) for i in ids]


def test_near_key_accepts_only_keys_within_the_kth_known_contact() -> None:
    key = bytes(20)
    own = bytes(19) + b"\x10"  # distance 16 from the key
    nearer = [bytes(19) + bytes([i]) for i in range(1, 4)]  # distances 1..3
    farther = [bytes(19) + bytes([i]) for i in range(0x20, 0x23)]
    assert sorted(distance(c, key) for c in nearer) == [1, 2, 3]
    # Three contacts, all nearer, with k = 3: we are the fourth, not a replica.
    assert not near_key(own, key, _contacts(nearer), 3)
    # With k = 4, or with the k-th contact farther than us, we are.
    assert near_key(own, key, _contacts(nearer + farther)[:4], 4)
    assert near_key(own, key, _contacts(nearer[:2] + farther)[:3], 3)
    # A table that knows fewer than k contacts cannot tell, and accepts.
    assert near_key(own, key, _contacts(nearer), 4)
