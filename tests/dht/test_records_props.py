"""Property tests for signed DHT records, their merge and quorum reads."""

from __future__ import annotations

from dataclasses import replace
from functools import reduce

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from p2pbackup.crypto.identity import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Identity
from p2pbackup.dht.quorum import QuorumRead, QuorumWrite
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import (
    MAX_NAME,
    Record,
    RecordKind,
    SignedEntry,
    accept,
    covers,
    merge,
    record_key,
    set_record,
    value_record,
)
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact

CRYPTO = settings(max_examples=40, deadline=None)

identities = st.binary(min_size=32, max_size=32).map(Identity.from_seed)
names = st.binary(min_size=1, max_size=MAX_NAME)
values = st.binary(max_size=64)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
# small pools so set records overlap and the same value recurs under several seqs
pool_values = st.sampled_from([b"", b"a", b"b", b"c", b"snapshot-1", b"snapshot-2"])
small_seqs = st.integers(min_value=0, max_value=3)


def _entries(record: Record) -> frozenset[SignedEntry]:
    return frozenset(record.entries)


def _value_map(record: Record) -> dict[bytes, int]:
    return {e.value: e.seq for e in record.entries}


@st.composite
def value_records(draw: st.DrawFn) -> Record:
    return value_record(draw(identities), draw(names), draw(seqs), draw(values))


@st.composite
def set_records(draw: st.DrawFn) -> Record:
    values_list = draw(st.lists(values, min_size=1, max_size=5))
    return set_record(draw(identities), draw(names), values_list, draw(seqs))


signed_records = value_records() | set_records()


@st.composite
def owner_sets(draw: st.DrawFn, count: int) -> list[Record]:
    """`count` set records of one owner and name, as different devices would write them."""
    identity, name = draw(identities), draw(names)
    return [
        set_record(
            identity,
            name,
            draw(st.lists(pool_values, min_size=1, max_size=4)),
            draw(small_seqs),
        )
        for _ in range(count)
    ]


# --- signatures ----------------------------------------------------------------------


@CRYPTO
@given(signed_records)
def test_signed_records_verify(record: Record) -> None:
    record.check()
    assert record.is_valid()
    assert accept(None, record) == record
    assert record.key == record_key(record.owner, record.name)


@CRYPTO
@given(signed_records, st.data())
def test_any_altered_field_fails_verification(record: Record, data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(["value", "seq", "name", "owner", "kind", "signature"]))
    index = data.draw(st.integers(0, len(record.entries) - 1))
    entry = record.entries[index]
    if field == "value":
        new_value = data.draw(values.filter(lambda v: v != entry.value))
        altered = _with_entry(record, index, replace(entry, value=new_value))
    elif field == "seq":
        new_seq = data.draw(seqs.filter(lambda s: s != entry.seq))
        altered = _with_entry(record, index, replace(entry, seq=new_seq))
    elif field == "signature":
        sig = bytearray(entry.signature)
        pos = data.draw(st.integers(0, SIGNATURE_BYTES - 1))
        sig[pos] ^= data.draw(st.integers(1, 255))
        altered = _with_entry(record, index, replace(entry, signature=bytes(sig)))
    elif field == "name":
        altered = replace(record, name=data.draw(names.filter(lambda n: n != record.name)))
    elif field == "owner":
        other = data.draw(identities)
        assume(other.public_key != record.owner)
        altered = replace(record, owner=other.public_key)
    else:
        new_kind = RecordKind.SET if record.kind is RecordKind.VALUE else RecordKind.VALUE
        altered = replace(record, kind=new_kind)
    assert not altered.is_valid()
    with pytest.raises(RecordRejected):
        altered.check()
    with pytest.raises(RecordRejected):
        accept(None, altered)
    with pytest.raises(RecordRejected):
        RecordStore().put(altered)


def _with_entry(record: Record, index: int, entry: SignedEntry) -> Record:
    entries = list(record.entries)
    entries[index] = entry
    return replace(record, entries=tuple(entries))


@CRYPTO
@given(identities, identities, names, seqs, values)
def test_owner_cannot_be_swapped_by_resigning(
    owner: Identity, forger: Identity, name: bytes, seq: int, value: bytes
) -> None:
    """A forger signing with its own key under the victim's owner field is refused."""
    assume(owner.public_key != forger.public_key)
    forged = value_record(forger, name, seq, value)
    claimed = replace(forged, owner=owner.public_key)
    assert claimed.key == record_key(owner.public_key, name)
    assert not claimed.is_valid()
    with pytest.raises(RecordRejected):
        accept(value_record(owner, name, 0, b"genuine"), claimed)


@CRYPTO
@given(identities, names, seqs, st.lists(values, min_size=2, max_size=3, unique=True))
def test_value_record_with_extra_entries_refused(
    identity: Identity, name: bytes, seq: int, vals: list[bytes]
) -> None:
    """Set entries re-labelled as a value record fail: kind is signed and one entry only."""
    as_set = set_record(identity, name, vals, seq)
    relabelled = replace(as_set, kind=RecordKind.VALUE)
    assert not relabelled.is_valid()
    single = value_record(identity, name, seq, vals[0])
    padded = replace(single, entries=single.entries + single.entries)
    assert not padded.is_valid()
    assert not replace(single, entries=()).is_valid()


@CRYPTO
@given(identities, names, values)
def test_bounds_refused(identity: Identity, name: bytes, value: bytes) -> None:
    good = value_record(identity, name, 1, value)
    assert not replace(good, owner=good.owner[:-1]).is_valid()
    assert not replace(good, owner=good.owner + b"\x00").is_valid()
    assert len(good.owner) == PUBLIC_KEY_BYTES
    assert not value_record(identity, b"", 1, value).is_valid()
    assert not value_record(identity, b"n" * (MAX_NAME + 1), 1, value).is_valid()


# --- value records: newest wins --------------------------------------------------------


@CRYPTO
@given(identities, names, seqs, seqs, values, values)
def test_newer_seq_wins(
    identity: Identity, name: bytes, seq_a: int, seq_b: int, value_a: bytes, value_b: bytes
) -> None:
    assume(seq_a != seq_b)
    a = value_record(identity, name, seq_a, value_a)
    b = value_record(identity, name, seq_b, value_b)
    newer, older = (a, b) if seq_a > seq_b else (b, a)
    assert merge(a, b) == merge(b, a) == newer
    assert merge(older, newer).value == newer.value
    assert accept(older, newer) == newer
    with pytest.raises(RecordRejected):
        accept(newer, older)
    store = RecordStore()
    store.put(older)
    store.put(newer)
    with pytest.raises(RecordRejected):
        store.put(older)
    assert store.get(newer.key) == newer
    assert covers(newer, older)
    assert not covers(older, newer)


@CRYPTO
@given(identities, names, seqs, values, values)
def test_equal_seq_tie_break_is_order_independent(
    identity: Identity, name: bytes, seq: int, value_a: bytes, value_b: bytes
) -> None:
    a = value_record(identity, name, seq, value_a)
    b = value_record(identity, name, seq, value_b)
    assert merge(a, b) == merge(b, a)
    winner = merge(a, b)
    assert merge(winner, a) == merge(winner, b) == winner
    # the winner is accepted on top of either; the loser never replaces the winner
    assert accept(a, winner) == winner
    assert accept(b, winner) == winner


# --- set records: a join semilattice -------------------------------------------------


@CRYPTO
@given(owner_sets(2))
def test_set_merge_commutative(records: list[Record]) -> None:
    a, b = records
    assert merge(a, b) == merge(b, a)


@CRYPTO
@given(owner_sets(3))
def test_set_merge_associative(records: list[Record]) -> None:
    a, b, c = records
    assert merge(merge(a, b), c) == merge(a, merge(b, c))


@CRYPTO
@given(owner_sets(2))
def test_set_merge_idempotent(records: list[Record]) -> None:
    a, b = records
    assert _entries(merge(a, a)) == _entries(a)
    m = merge(a, b)
    assert merge(m, m) == m
    assert merge(m, a) == m
    assert merge(m, b) == m
    assert merge(None, a) == a


@CRYPTO
@given(owner_sets(4), st.randoms(use_true_random=False))
def test_set_merge_is_union_with_newest_seq_per_value(records: list[Record], rng: object) -> None:
    merged = reduce(merge, records)
    merged.check()  # merging never breaks a signature
    expected: dict[bytes, int] = {}
    for record in records:
        for value, seq in _value_map(record).items():
            expected[value] = max(seq, expected.get(value, -1))
    assert _value_map(merged) == expected
    assert len(merged.entries) == len(expected), "one entry per value"
    assert merged.values == frozenset().union(*(r.values for r in records))
    for record in records:
        assert covers(merged, record)
    shuffled = list(records)
    rng.shuffle(shuffled)  # type: ignore[attr-defined]
    assert reduce(merge, shuffled) == merged
    # a replica store converges to the same record whatever the arrival order
    store = RecordStore()
    for record in shuffled:
        store.put(record)
    assert store.get(merged.key) == merged


@CRYPTO
@given(identities, names, st.lists(values, min_size=1, max_size=3), values)
def test_set_and_value_never_merge(
    identity: Identity, name: bytes, set_values: list[bytes], value: bytes
) -> None:
    s = set_record(identity, name, set_values)
    v = value_record(identity, name, 0, value)
    for a, b in ((s, v), (v, s)):
        with pytest.raises(RecordRejected):
            merge(a, b)
        with pytest.raises(RecordRejected):
            accept(a, b)


# --- other owners --------------------------------------------------------------------


@CRYPTO
@given(identities, identities, names, st.booleans(), values, values)
def test_other_owner_refused(
    owner: Identity, other: Identity, name: bytes, as_set: bool, value_a: bytes, value_b: bytes
) -> None:
    assume(owner.public_key != other.public_key)
    if as_set:
        mine, theirs = set_record(owner, name, [value_a]), set_record(other, name, [value_b])
    else:
        mine = value_record(owner, name, 0, value_a)
        theirs = value_record(other, name, 2**62, value_b)  # even with a higher seq
    assert mine.key != theirs.key
    with pytest.raises(RecordRejected):
        merge(mine, theirs)
    with pytest.raises(RecordRejected):
        accept(mine, theirs)
    # a replica keeps them apart: the other owner's write never lands on our key
    store = RecordStore()
    store.put(mine)
    store.put(theirs)
    assert store.get(mine.key) == mine
    assert store.get(theirs.key) == theirs
    # a quorum read for our key counts the other owner's record as no answer
    read = QuorumRead(mine.key, r=2)
    read.on_answer(_contact(1), theirs)
    read.on_answer(_contact(2), mine)
    assert read.invalid == 1
    assert read.enough
    assert read.merged() == mine
    assert read.stale() == [_contact(1)]


def _contact(n: int) -> Contact:
    return Contact(n.to_bytes(20, "big"), "10.0.0.1", 4000 + n)


# --- quorum reads --------------------------------------------------------------------


@CRYPTO
@given(owner_sets(4), st.lists(st.sampled_from(["ok", "none", "forged"]), min_size=4, max_size=4))
def test_quorum_read_merges_valid_answers_and_names_stale(
    records: list[Record], kinds: list[str]
) -> None:
    key = records[0].key
    read = QuorumRead(key, r=3)
    valid: list[Record] = []
    for n, (record, kind) in enumerate(zip(records, kinds, strict=True)):
        if kind == "ok":
            read.on_answer(_contact(n), record)
            valid.append(record)
        elif kind == "none":
            read.on_answer(_contact(n), None)
        else:
            entry = record.entries[0]
            forged = replace(record, entries=(replace(entry, value=entry.value + b"!"),))
            read.on_answer(_contact(n), forged)
    assert read.enough
    assert read.invalid == kinds.count("forged")
    expected = reduce(merge, valid) if valid else None
    assert read.merged() == expected
    stale = {c.node_id for c in read.stale()}
    if expected is None:
        assert stale == set()
        return
    for n, kind in enumerate(kinds):
        behind = kind != "ok" or _entries(records[n]) != _entries(merge(records[n], expected))
        assert (_contact(n).node_id in stale) is behind


@given(st.integers(1, 5), st.lists(st.sampled_from(["ack", "refuse", "fail"]), max_size=8))
def test_quorum_write_succeeds_at_w_acks(w: int, events: list[str]) -> None:
    write = QuorumWrite(targets=len(events), w=w)
    for n, event in enumerate(events):
        if event == "ack":
            write.on_ack(_contact(n))
        elif event == "refuse":
            write.on_refusal("no")
        else:
            write.on_failure()
    assert write.succeeded is (events.count("ack") >= w)
    assert len(write.refusals) == events.count("refuse")
    assert write.failures == events.count("fail")


@CRYPTO
@given(identities, names, st.lists(values, min_size=1, max_size=3), values)
def test_quorum_read_survives_kind_clash(
    identity: Identity, name: bytes, set_values: list[bytes], value: bytes
) -> None:
    """An owner who signed both a set and a value under one name must not break reads."""
    as_set = set_record(identity, name, set_values)
    as_value = value_record(identity, name, 0, value)
    read = QuorumRead(as_set.key, r=2)
    read.on_answer(_contact(1), as_set)
    read.on_answer(_contact(2), as_value)
    assert read.invalid == 0
    assert read.merged() == as_set  # the first valid view is kept
    stale = read.stale()
    assert _contact(1) not in stale
