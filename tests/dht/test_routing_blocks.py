"""Routing tables that resist flooding: per-block limits and Kademlia's keep-the-old rule.

A stateful machine drives a table with limits through any mix of adds,
hearsay, probes answered or not, and removals, with contacts from a handful
of address blocks; after every step no block holds more than its share of a
bucket or of the table, and no contact that always answers its probe has
ever been evicted for a newcomer.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from p2pbackup.base.ids import id_int
from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.routing import AddOutcome, BlockLimits, RoutingTable
from p2pbackup.net.blocks import LOOPBACK, block_of
from p2pbackup.net.contact import Contact

PER_BUCKET, PER_TABLE = 2, 5
BUCKETS = [0, 1, 2, 3, 4, 5, 6, 7, 159]  # near and far, so buckets fill and overflow
# Five /24s (one on loopback) and a host name; ports differ so loopback can be exempt.
HOSTS = ["10.0.0.1", "10.0.0.2", "10.0.1.7", "192.0.2.9", "127.0.0.1", "peer.example"]
id_specs = st.tuples(st.sampled_from(BUCKETS), st.integers(0, 127))
hosts = st.tuples(st.sampled_from(HOSTS), st.integers(1, 4))


def _limits(exempt: frozenset[str] = frozenset()) -> BlockLimits:
    return BlockLimits(lambda c: block_of(c, exempt), PER_BUCKET, PER_TABLE)


class FloodedTable(RuleBasedStateMachine):
    """`responsive` contacts always answer a probe; the others never do."""

    @initialize(k=st.integers(2, 6), exempt=st.booleans())
    def init(self, k: int, exempt: bool) -> None:
        self.local = bytes(NODE_ID_BYTES)
        self.exempt = frozenset({LOOPBACK}) if exempt else frozenset()
        self.table = RoutingTable(self.local, k=k, limits=_limits(self.exempt))
        self.now = 0.0
        self.responsive: set[bytes] = set()
        self.entered: set[bytes] = set()  # responsive contacts seen in the table

    def _contact(self, spec: tuple[int, int], host: tuple[str, int]) -> Contact:
        bucket, low = spec
        distance = (1 << bucket) | (low & ((1 << bucket) - 1))
        return Contact(distance.to_bytes(NODE_ID_BYTES, "big"), host[0], 4000 + host[1])

    @rule(spec=id_specs, host=hosts, answers=st.booleans(), later=st.floats(0, 2000))
    def add(
        self, spec: tuple[int, int], host: tuple[str, int], answers: bool, later: float
    ) -> None:
        contact = self._contact(spec, host)
        self.now += later
        if answers:
            self.responsive.add(contact.node_id)
        else:
            self.responsive.discard(contact.node_id)
        result = self.table.add(contact, self.now)
        if result.ping is not None:  # the driver probes the oldest, as DhtNode does
            if result.ping.node_id in self.responsive:
                self.table.ping_answered(result.ping, self.now)
            else:
                self.table.remove(result.ping.node_id)
        if result.outcome is AddOutcome.LIMITED:
            assert contact.node_id not in self.table or self.table.get(contact.node_id) != contact

    @rule(spec=id_specs, host=hosts)
    def hearsay(self, spec: tuple[int, int], host: tuple[str, int]) -> None:
        self.table.add_hearsay(self._contact(spec, host), self.now)

    @rule(spec=id_specs)
    def dies(self, spec: tuple[int, int]) -> None:
        """A contact stops answering and fails its calls: the driver removes it."""
        node_id = self._contact(spec, ("x", 1)).node_id
        self.responsive.discard(node_id)
        self.table.remove(node_id)

    @invariant()
    def blocks_within_limits(self) -> None:
        block = _limits(self.exempt).block_of
        per_table = Counter(block(c) for c in self.table)
        assert all(n <= PER_TABLE for n in per_table.values()), per_table
        per_bucket = Counter((self.table.bucket_index(c.node_id), block(c)) for c in self.table)
        assert all(n <= PER_BUCKET for n in per_bucket.values()), per_bucket
        for name, count in per_table.items():
            assert self.table.block_count(name) == count

    @invariant()
    def no_responsive_contact_was_evicted(self) -> None:
        # Whoever entered and kept answering is still there: only `dies` removes it.
        self.entered &= self.responsive
        for node_id in self.entered:
            assert node_id in self.table, node_id.hex()
        self.entered |= {c.node_id for c in self.table if c.node_id in self.responsive}


TestFloodedTable = FloodedTable.TestCase
TestFloodedTable.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


@settings(max_examples=40, deadline=None)
@given(count=st.integers(11, 60))
def test_a_flood_from_one_block_takes_at_most_the_table_limit(count: int) -> None:
    table = RoutingTable(bytes(NODE_ID_BYTES), k=20, limits=BlockLimits(block_of, 2, 10))
    for i in range(count):
        # Ids ground into every bucket from 159 down, all from one /24.
        node_id = ((1 << (159 - i % 40)) | i).to_bytes(NODE_ID_BYTES, "big")
        table.add(Contact(node_id, f"203.0.113.{i % 250}", 4000), float(i))
    assert len(table) == 10
    assert table.block_count("net:203.0.113.0/24") == 10


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 60))
def test_exempt_loopback_lets_a_one_host_mesh_fill_the_table(count: int) -> None:
    exempt = frozenset({LOOPBACK})
    table = RoutingTable(
        bytes(NODE_ID_BYTES), k=20, limits=BlockLimits(lambda c: block_of(c, exempt), 2, 10)
    )
    for i in range(count):
        node_id = ((1 << 159) | (i + 1)).to_bytes(NODE_ID_BYTES, "big")
        table.add(Contact(node_id, "127.0.0.1", 5000 + i), float(i))
    assert len(table) == min(count, 20)  # only the bucket's k bounds it


def test_a_replacement_promoted_after_a_removal_obeys_the_limits() -> None:
    table = RoutingTable(bytes(NODE_ID_BYTES), k=2, limits=BlockLimits(block_of, 1, 10))
    top = 1 << 159
    a = Contact((top | 1).to_bytes(NODE_ID_BYTES, "big"), "198.51.100.1", 1)
    b = Contact((top | 2).to_bytes(NODE_ID_BYTES, "big"), "198.51.101.1", 1)
    same_block_as_b = Contact((top | 3).to_bytes(NODE_ID_BYTES, "big"), "198.51.101.2", 1)
    other = Contact((top | 4).to_bytes(NODE_ID_BYTES, "big"), "198.51.102.1", 1)
    for contact in (a, b, other):
        table.add(contact, 0.0)
    # b's block has its one place: a second of that block is not even queued.
    assert table.add(same_block_as_b, 1.0).outcome is AddOutcome.LIMITED
    table.remove(a.node_id)
    assert {c.node_id for c in table} == {b.node_id, other.node_id}
    assert id_int(same_block_as_b.node_id) not in {id_int(c.node_id) for c in table}
