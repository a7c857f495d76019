"""Stateful property tests for the Kademlia routing table.

A small reference model tracks what the table must hold (bucket contents in
least-recently-seen order, replacement lists, the one outstanding probe per
bucket, touch times); invariants compare both after every step, and `closest`
is checked against brute force and against `kademlia.node.NodeHeap`.
"""

from __future__ import annotations

from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from kademlia.node import Node, NodeHeap

from p2pbackup.base.ids import distance, id_int
from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.routing import (
    ID_BITS,
    REPLACEMENTS_PER_BUCKET,
    AddOutcome,
    AddResult,
    RoutingTable,
)
from p2pbackup.net.contact import Contact

# Ids are drawn near a few buckets so that buckets fill up, overflow and clash;
# at most 16 ids per bucket, so replacement lists never hit their cap.
BUCKETS = [0, 1, 2, 3, 4, 100, 159]
id_specs = st.tuples(st.sampled_from(BUCKETS), st.integers(min_value=0, max_value=15))
addresses = st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "host"]), st.integers(1, 3))
raw_ids = st.binary(min_size=NODE_ID_BYTES, max_size=NODE_ID_BYTES)


def _bucket_of(local: bytes, node_id: bytes) -> int:
    return max(distance(local, node_id).bit_length() - 1, 0)


class _ModelBucket:
    def __init__(self, now: float) -> None:
        self.contacts: OrderedDict[bytes, Contact] = OrderedDict()
        self.replacements: OrderedDict[bytes, Contact] = OrderedDict()
        self.pinging: bytes | None = None
        self.touched = now


class RoutingMachine(RuleBasedStateMachine):
    table: RoutingTable
    local: bytes
    k: int

    @initialize(local=raw_ids, k=st.integers(min_value=1, max_value=4), start=st.floats(0, 1e6))
    def init(self, local: bytes, k: int, start: float) -> None:
        self.local = local
        self.k = k
        self.now = start
        self.table = RoutingTable(local, k=k, now=start)
        self.model = [_ModelBucket(start) for _ in range(ID_BITS)]
        self.removed: set[bytes] = set()

    # -- helpers --------------------------------------------------------------------

    def _id(self, spec: tuple[int, int]) -> bytes:
        bucket, low = spec
        dist = (1 << bucket) | (low & ((1 << bucket) - 1))
        return (id_int(self.local) ^ dist).to_bytes(NODE_ID_BYTES, "big")

    def _held(self) -> dict[bytes, Contact]:
        return {i: c for b in self.model for i, c in b.contacts.items()}

    def _bucket(self, node_id: bytes) -> _ModelBucket:
        return self.model[_bucket_of(self.local, node_id)]

    # -- rules ----------------------------------------------------------------------

    @rule(spec=id_specs, address=addresses, dt=st.floats(0, 100))
    def add(self, spec: tuple[int, int], address: tuple[str, int], dt: float) -> None:
        self.now += dt
        self._add(self._id(spec), address)

    @rule(
        bucket=st.sampled_from(BUCKETS[2:]),
        lows=st.lists(st.integers(0, 15), min_size=1, max_size=8),
        address=addresses,
    )
    def add_burst(self, bucket: int, lows: list[int], address: tuple[str, int]) -> None:
        """Several newcomers in one bucket: fills it and queues replacements."""
        for low in lows:
            self._add(self._id((bucket, low)), address)

    def _add(self, node_id: bytes, address: tuple[str, int]) -> None:
        contact = Contact(node_id, *address)
        bucket = self._bucket(node_id)
        was_full = len(bucket.contacts) >= self.k
        result = self.table.add(contact, self.now)
        self.removed.discard(node_id)
        bucket.touched = self.now
        if node_id in bucket.contacts:
            assert result.outcome is AddOutcome.UPDATED
            assert result.ping is None
            bucket.contacts[node_id] = contact
            bucket.contacts.move_to_end(node_id)
        elif not was_full:
            assert result.outcome is AddOutcome.ADDED
            bucket.contacts[node_id] = contact
            bucket.replacements.pop(node_id, None)
        else:
            assert result.outcome is AddOutcome.PENDING
            assert node_id not in self.table
            bucket.replacements[node_id] = contact
            bucket.replacements.move_to_end(node_id)
            while len(bucket.replacements) > REPLACEMENTS_PER_BUCKET:
                bucket.replacements.popitem(last=False)
            if bucket.pinging is None:
                oldest_id, oldest = next(iter(bucket.contacts.items()))
                assert result.ping == oldest, "must probe the least recently seen contact"
                bucket.pinging = oldest_id
            else:
                assert result.ping is None, "one probe per bucket at a time"

    @rule(address=addresses)
    def add_own_id(self, address: tuple[str, int]) -> None:
        before = len(self.table)
        result = self.table.add(Contact(self.local, *address), self.now)
        assert result.outcome is AddOutcome.IGNORED
        assert not self.table.add_hearsay(Contact(self.local, *address), self.now)
        assert len(self.table) == before

    @rule(spec=id_specs, address=addresses, dt=st.floats(0, 100))
    def add_hearsay(self, spec: tuple[int, int], address: tuple[str, int], dt: float) -> None:
        self.now += dt
        node_id = self._id(spec)
        contact = Contact(node_id, *address)
        bucket = self._bucket(node_id)
        expected = node_id not in self._held() and len(bucket.contacts) < self.k
        assert self.table.add_hearsay(contact, self.now) is expected
        if expected:
            self.removed.discard(node_id)
            bucket.contacts[node_id] = contact
            bucket.contacts.move_to_end(node_id, last=False)
            bucket.touched = self.now
            assert self.table.get(node_id) == contact

    @precondition(lambda self: any(b.pinging is not None for b in self.model))
    @rule(data=st.data(), dt=st.floats(0, 100))
    def ping_answered(self, data: st.DataObject, dt: float) -> None:
        self.now += dt
        pinged = sorted(b.pinging for b in self.model if b.pinging is not None)
        node_id = data.draw(st.sampled_from(pinged))
        bucket = self._bucket(node_id)
        contact = bucket.contacts[node_id]
        self.table.ping_answered(contact, self.now)
        bucket.pinging = None
        bucket.contacts.move_to_end(node_id)
        bucket.touched = self.now

    @rule(spec=id_specs, address=addresses, dt=st.floats(0, 100))
    def ping_answered_any(self, spec: tuple[int, int], address: tuple[str, int], dt: float) -> None:
        self.now += dt
        node_id = self._id(spec)
        bucket = self._bucket(node_id)
        self.table.ping_answered(Contact(node_id, *address), self.now)
        bucket.pinging = None
        if node_id in bucket.contacts:
            bucket.contacts.move_to_end(node_id)
            bucket.touched = self.now

    def _remove(self, node_id: bytes) -> None:
        bucket = self._bucket(node_id)
        was_held = node_id in bucket.contacts
        replacement = None
        if bucket.pinging == node_id:
            bucket.pinging = None
        bucket.replacements.pop(node_id, None)
        if was_held:
            del bucket.contacts[node_id]
            if bucket.replacements:
                new_id, replacement = bucket.replacements.popitem(last=True)
                bucket.contacts[new_id] = replacement
        assert self.table.remove(node_id) is was_held
        assert node_id not in self.table
        assert self.table.get(node_id) is None
        assert all(c.node_id != node_id for c in self.table)
        if replacement is not None:
            assert self.table.get(replacement.node_id) == replacement
        self.removed.add(node_id)

    @rule(spec=id_specs)
    def remove(self, spec: tuple[int, int]) -> None:
        self._remove(self._id(spec))

    @precondition(lambda self: len(self.table) > 0)
    @rule(data=st.data())
    def remove_held(self, data: st.DataObject) -> None:
        self._remove(data.draw(st.sampled_from(sorted(self._held()))))

    @rule(node_id=raw_ids)
    def remove_unknown(self, node_id: bytes) -> None:
        if node_id in self._held():
            return
        before = sorted(c.node_id for c in self.table)
        self._remove(node_id)
        assert sorted(c.node_id for c in self.table) == before

    @rule(index=st.integers(0, ID_BITS - 1), dt=st.floats(0, 100))
    def touch_bucket(self, index: int, dt: float) -> None:
        self.now += dt
        self.table.touch_bucket(index, self.now)
        self.model[index].touched = self.now

    @rule(
        where=raw_ids | id_specs,
        count=st.integers(0, 25) | st.none(),
        exclude=st.none() | id_specs,
    )
    def closest(
        self,
        where: bytes | tuple[int, int],
        count: int | None,
        exclude: tuple[int, int] | None,
    ) -> None:
        target_id = where if isinstance(where, bytes) else self._id(where)
        exclude_id = None if exclude is None else self._id(exclude)
        got = self.table.closest(target_id, count, exclude=exclude_id)
        n = self.k if count is None else count
        held = [c for i, c in self._held().items() if i != exclude_id]
        brute = sorted(held, key=lambda c: distance(c.node_id, target_id))[:n]
        assert got == brute
        dists = [distance(c.node_id, target_id) for c in got]
        assert dists == sorted(dists)
        # independent oracle: the kademlia package's NodeHeap
        heap = NodeHeap(Node(target_id), n)
        heap.push([Node(c.node_id) for c in held])
        assert [c.node_id for c in got] == [node.id for node in heap]

    @rule(index=st.integers(0, ID_BITS - 1), bits=st.integers(0, 2**ID_BITS - 1))
    def random_id_in_bucket(self, index: int, bits: int) -> None:
        node_id = self.table.random_id_in_bucket(index, bits)
        assert len(node_id) == NODE_ID_BYTES
        assert node_id != self.local
        assert self.table.bucket_index(node_id) == index

    @rule(max_age=st.floats(0, 500), dt=st.floats(0, 500))
    def stale_buckets(self, max_age: float, dt: float) -> None:
        self.now += dt
        got = self.table.stale_buckets(self.now, max_age)
        occupied = [i for i, b in enumerate(self.model) if b.contacts]
        if not occupied:
            assert got == []
            return
        sizes = [len(b.contacts) for b in self.model]
        kth = next((i for i in occupied if sum(sizes[: i + 1]) >= self.k), 0)
        expected = [
            i
            for i in range(occupied[0], ID_BITS)
            if self.now - self.model[i].touched >= max_age and (i >= kth or sizes[i])
        ]
        assert got == expected

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def own_id_absent(self) -> None:
        assert self.local not in self.table
        assert self.table.get(self.local) is None
        assert all(c.node_id != self.local for c in self.table)

    @invariant()
    def contents_match_model(self) -> None:
        held = self._held()
        listed = list(self.table)
        assert len(listed) == len(self.table) == len(held)
        assert {c.node_id: c for c in listed} == held
        for node_id, contact in held.items():
            assert node_id in self.table
            assert self.table.get(node_id) == contact
        assert not (self.removed & held.keys()), "a removed contact came back on its own"

    @invariant()
    def buckets_bounded_and_placed(self) -> None:
        per_bucket = [0] * ID_BITS
        for contact in self.table:
            index = self.table.bucket_index(contact.node_id)
            d = distance(contact.node_id, self.local)
            assert 2**index <= d < 2 ** (index + 1), "contact in the wrong bucket"
            per_bucket[index] += 1
        for index in range(ID_BITS):
            assert self.table.bucket_size(index) == per_bucket[index] <= self.k
            assert per_bucket[index] == len(self.model[index].contacts)

    @invariant()
    def iteration_follows_bucket_order(self) -> None:
        expected = [i for b in self.model for i in b.contacts]
        assert [c.node_id for c in self.table] == expected

    @invariant()
    def empty_buckets_beyond_nearest(self) -> None:
        got = self.table.empty_buckets_beyond_nearest()
        occupied = [i for i, b in enumerate(self.model) if b.contacts]
        if not occupied:
            assert got == []
            return
        assert got == [i for i in range(ID_BITS - 1, occupied[0], -1) if i not in occupied]


RoutingMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=50, deadline=None)
TestRouting = RoutingMachine.TestCase


@given(raw_ids, raw_ids)
def test_bucket_index_matches_distance_prefix(local: bytes, other: bytes) -> None:
    table = RoutingTable(local)
    index = table.bucket_index(other)
    d = distance(local, other)
    if d == 0:
        assert index == 0
    else:
        assert 2**index <= d < 2 ** (index + 1)
        # the first differing bit from the top is bit `index`
        assert (id_int(local) >> index) ^ (id_int(other) >> index) == 1


@settings(max_examples=50)
@given(raw_ids, st.lists(raw_ids, max_size=80, unique=True), raw_ids, st.integers(0, 30))
def test_closest_against_kademlia_heap(
    local: bytes, ids: list[bytes], target: bytes, count: int
) -> None:
    table = RoutingTable(local, k=20)
    for i, node_id in enumerate(ids):
        table.add(Contact(node_id, "h", i % 65536), now=0.0)
    held = [c.node_id for c in table]
    assert local not in held
    heap = NodeHeap(Node(target), count)
    heap.push([Node(i) for i in held])
    assert [c.node_id for c in table.closest(target, count)] == [n.id for n in heap]


@settings(max_examples=60)
@given(
    raw_ids,
    st.lists(st.tuples(st.integers(0, 159), st.integers(0, 2**160 - 1)), max_size=120),
    st.integers(0, 2**160 - 1),
    st.integers(1, 30),
    st.booleans(),
)
def test_closest_across_many_buckets_against_a_full_ranking(
    local: bytes, picks: list[tuple[int, int]], bits: int, count: int, exclude_one: bool
) -> None:
    """Contacts in many buckets, the target in any of them (or near us), the asker
    excluded: `closest` equals ranking every contact by its distance to the target."""
    mine = id_int(local)
    table = RoutingTable(local, k=4)
    for i, (index, low) in enumerate(picks):  # one contact at each chosen distance
        other = mine ^ (1 << index | low % (1 << index))
        table.add(Contact(other.to_bytes(NODE_ID_BYTES, "big"), "h", i), now=0.0)
    held = [c.node_id for c in table]
    target = (mine ^ bits % (1 << bits % 161)).to_bytes(NODE_ID_BYTES, "big")
    exclude = held[len(held) // 2] if exclude_one and held else None
    ranked = sorted((i for i in held if i != exclude), key=lambda i: distance(i, target))
    got = [c.node_id for c in table.closest(target, count, exclude=exclude)]
    assert got == ranked[:count]


def test_a_full_bucket_probes_its_oldest_contact_only_once_it_is_questionable() -> None:
    local = bytes(20)
    table = RoutingTable(local, k=2, now=0.0, questionable_after=900.0)

    def far(n: int) -> Contact:  # all in the farthest bucket
        return Contact(bytes([0x80]) + n.to_bytes(19, "big"), "127.0.0.1", 4000 + n)

    table.add(far(1), 0.0)
    table.add(far(2), 10.0)
    assert table.add(far(3), 100.0) == AddResult(AddOutcome.PENDING)  # far(1) heard lately
    assert table.add(far(4), 901.0) == AddResult(AddOutcome.PENDING, far(1))
    table.ping_answered(far(1), 902.0)
    # far(2), now the oldest, was last heard at 10 s: questionable, so it is probed.
    assert table.add(far(5), 1000.0) == AddResult(AddOutcome.PENDING, far(2))
