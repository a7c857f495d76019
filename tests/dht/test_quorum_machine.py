"""A state machine over quorum writes and reads: the newest acknowledged write is read.

Five replicas hold records in real `RecordStore`s; writes go through
`QuorumWrite` and reads through `QuorumRead`, as `DhtNode` drives them, but
hypothesis picks which replicas miss each write, which are cut off by a
partition, which stay silent on a read, which read repairs are lost, and
when replicas merge each other's records. With R + W > N and honest
replicas, every successful read must return the newest acknowledged value
and every acknowledged set entry, and nothing that was never written.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.quorum import QuorumRead, QuorumWrite
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.dht.records import (
    Record,
    RecordKind,
    SignedEntry,
    covers,
    record_key,
    set_record,
    value_record,
)
from p2pbackup.errors import RecordRejected
from p2pbackup.net.contact import Contact

CONFIG = DhtConfig()
N, W, R = CONFIG.replicas, CONFIG.write_quorum, CONFIG.read_quorum
OWNER = Identity.from_seed(b"\x07" * 32)
HEAD, INDEX = b"head", b"snapshot-index"
KEYS = {
    RecordKind.VALUE: record_key(OWNER.public_key, HEAD),
    RecordKind.SET: record_key(OWNER.public_key, INDEX),
}


def _replica_sets(fewest: int, most: int) -> st.SearchStrategy[frozenset[int]]:
    """Sets of `fewest` to `most` replicas, every size alike (not hypothesis' usual
    small ones), so a write just meets, just misses or wholly misses its quorum."""
    return st.integers(fewest, most).flatmap(
        lambda size: st.permutations(range(N)).map(lambda order: frozenset(order[:size]))
    )


replica_sets = _replica_sets(0, N)
# A read hears exactly R replicas, the fewest that let it succeed and so the
# hardest case (a partition may cut off more, and the read then fails).
silences = _replica_sets(N - R, N - R)
kinds = st.sampled_from(RecordKind)
# a small pool, so the same set value recurs under several sequence numbers
pool_values = st.sampled_from([b"a", b"b", b"c", b"snap-1", b"snap-2"])


def _order(entry: SignedEntry) -> tuple[int, bytes]:
    """How a replica ranks two entries of one value (as `records.merge` does)."""
    return (entry.seq, entry.signature)


def _older(record: Record, held: Record | None) -> bool:
    """A value write older than the one a replica holds, which it must refuse."""
    if held is None or record.kind is not RecordKind.VALUE:
        return False
    return _order(record.entries[0]) < _order(held.entries[0])


class QuorumMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.stores = [RecordStore() for _ in range(N)]
        self.contacts = [Contact(bytes([i + 1]) * 20, f"10.0.0.{i + 1}", 4000) for i in range(N)]
        self.cut_off: frozenset[int] = frozenset()
        self.seq = 0
        self.value_writes: list[Record] = []
        self.acked_value: SignedEntry | None = None
        self.written_entries: set[SignedEntry] = set()
        self.acked_entries: set[SignedEntry] = set()
        self.reads = 0

    # ---- delivery ------------------------------------------------------

    def _deliver(self, record: Record, write: QuorumWrite, missing: frozenset[int]) -> None:
        """Store on every replica that is reachable and does not miss this write."""
        for i, store in enumerate(self.stores):
            if i in self.cut_off or i in missing:
                write.on_failure()
                continue
            before = store.get(record.key)
            try:
                after = store.put(record)
            except RecordRejected as exc:
                write.on_refusal(str(exc))
                assert _older(record, before), "a replica refused a write that was not older"
                assert store.get(record.key) == before
                continue
            write.on_ack(self.contacts[i])
            assert not _older(record, before), "a replica took an older value"
            # a replica never goes back: it keeps all it said before
            assert before is None or covers(after, before)

    # ---- rules ---------------------------------------------------------

    @rule(value=st.binary(max_size=8), missing=replica_sets)
    def write_value(self, value: bytes, missing: frozenset[int]) -> None:
        self.seq += 1
        record = value_record(OWNER, HEAD, self.seq, value)
        self.value_writes.append(record)
        write = QuorumWrite(N, W)
        self._deliver(record, write, missing)
        assert write.succeeded is (len(write.acks) >= W)
        if write.succeeded:
            self.acked_value = record.entries[0]

    @rule(
        values=st.lists(pool_values, min_size=1, max_size=3),
        seq=st.integers(0, 3),
        missing=replica_sets,
    )
    def write_set(self, values: list[bytes], seq: int, missing: frozenset[int]) -> None:
        """A device adds entries to the owner's set record (devices write at once)."""
        record = set_record(OWNER, INDEX, values, seq)
        self.written_entries.update(record.entries)
        write = QuorumWrite(N, W)
        self._deliver(record, write, missing)
        if write.succeeded:
            self.acked_entries.update(record.entries)

    @rule(data=st.data(), missing=replica_sets)
    def deliver_late(self, data: st.DataObject, missing: frozenset[int]) -> None:
        """An old value write arrives again: replicas holding newer ones refuse it."""
        if not self.value_writes:
            return
        record = data.draw(st.sampled_from(self.value_writes))
        self._deliver(record, QuorumWrite(N, 1), missing)

    @rule(kind=kinds, sender=st.integers(0, N - 1), receiver=st.integers(0, N - 1))
    def merge_replicas(self, kind: RecordKind, sender: int, receiver: int) -> None:
        """One replica republishes its record to another, which merges it in."""
        held = self.stores[sender].get(KEYS[kind])
        if held is None or {sender, receiver} & self.cut_off:
            return
        self._deliver(held, QuorumWrite(1, 1), frozenset(range(N)) - {receiver})
        assert covers(self.stores[receiver].get(KEYS[kind]), held)

    @rule(cut=replica_sets)
    def partition(self, cut: frozenset[int]) -> None:
        self.cut_off = cut

    @rule()
    def heal(self) -> None:
        self.cut_off = frozenset()

    @rule(kind=kinds, silent=silences, lost_repairs=replica_sets)
    def read(self, kind: RecordKind, silent: frozenset[int], lost_repairs: frozenset[int]) -> None:
        """A quorum read, then read repair of the stale replicas (some repairs lost)."""
        read = QuorumRead(KEYS[kind], R)
        for i, store in enumerate(self.stores):
            if i in self.cut_off or i in silent:
                read.on_failure()
            else:
                read.on_answer(self.contacts[i], store.get(KEYS[kind]))
        if not read.enough:
            return  # the node reports QuorumNotReached: nothing was read
        self.reads += 1
        merged = read.merged()
        if kind is RecordKind.VALUE:
            self._check_value_read(merged)
        else:
            self._check_set_read(merged)
        self._repair(read, merged, lost_repairs)

    # ---- what a read must see -----------------------------------------

    def _check_value_read(self, merged: Record | None) -> None:
        if self.acked_value is None:
            return
        assert merged is not None, "an acknowledged value was not read"
        newest = merged.entries[0]
        assert _order(newest) >= _order(self.acked_value), "a read went back before an ack"
        assert newest in {w.entries[0] for w in self.value_writes}
        if self.value_writes[-1].entries[0] == self.acked_value:
            assert newest == self.acked_value  # nothing newer was even tried

    def _check_set_read(self, merged: Record | None) -> None:
        if merged is None:
            assert not self.acked_entries, "acknowledged set entries were not read"
            return
        assert set(merged.entries) <= self.written_entries
        best = {e.value: e for e in merged.entries}
        for entry in self.acked_entries:
            assert entry.value in best, "an acknowledged set entry was lost"
            assert _order(best[entry.value]) >= _order(entry)

    def _repair(self, read: QuorumRead, merged: Record | None, lost: frozenset[int]) -> None:
        stale = read.stale()
        if merged is None:
            assert stale == []
            return
        for contact in stale:
            i = self.contacts.index(contact)
            if i not in lost:
                self._deliver(merged, QuorumWrite(1, 1), frozenset(range(N)) - {i})
                assert covers(self.stores[i].get(merged.key), merged)
        for contact, record in read.answers.values():
            if contact not in stale:
                assert covers(record, merged)

    @invariant()
    def replicas_hold_only_what_was_written(self) -> None:
        for store in self.stores:
            for record in store:
                if record.kind is RecordKind.SET:
                    assert set(record.entries) <= self.written_entries
                else:
                    assert record in self.value_writes


QuorumMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
TestQuorumMachine = QuorumMachine.TestCase
