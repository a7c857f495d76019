"""The Kademlia routing table, sans-IO.

One k-bucket per length of the XOR distance to our own id (160 buckets, no
splitting: the buckets near our id are exactly the split buckets of the
paper, the far ones identical). Buckets keep least-recently-seen order. When
a bucket is full, `add` answers with the contact to ping; the driver pings it
and reports back, so no I/O or clock lives here: times are passed in.

A contact that answers its probe is never evicted for a newcomer (the
paper's rule: long-lived contacts are the likeliest to stay). With a block
function, at most `bucket_block_limit` contacts of one address block sit in a
bucket and `table_block_limit` in the table, replacements included, so a
flood of identities from a few networks takes a few slots (decision 0023).
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from p2pbackup.base.ids import id_int
from p2pbackup.crypto.identity import NODE_ID_BYTES
from p2pbackup.dht.buckets import Bucket as _Bucket
from p2pbackup.dht.buckets import Buckets as _Buckets
from p2pbackup.net.contact import Contact

ID_BITS = NODE_ID_BYTES * 8
REPLACEMENTS_PER_BUCKET = 20


class AddOutcome(enum.Enum):
    ADDED = "added"
    UPDATED = "updated"
    PENDING = "pending"  # bucket full: ping `AddResult.ping` and report
    IGNORED = "ignored"  # our own id
    LIMITED = "limited"  # its address block already has its share of the table


@dataclass(frozen=True, slots=True)
class AddResult:
    outcome: AddOutcome
    ping: Contact | None = None


_UPDATED = AddResult(AddOutcome.UPDATED)


BlockOf = Callable[[Contact], str]


@dataclass(frozen=True, slots=True)
class BlockLimits:
    """At most `per_bucket` contacts of one block in a bucket and `per_table` in all."""

    block_of: BlockOf
    per_bucket: int = 2
    per_table: int = 10


class RoutingTable:
    """Contacts by XOR distance with at most `k` live contacts per bucket."""

    def __init__(
        self,
        local_id: bytes,
        k: int = 20,
        now: float = 0.0,
        questionable_after: float = 0.0,
        limits: BlockLimits | None = None,
    ) -> None:
        self.local_id = local_id
        self.limits = limits
        self._block: dict[int, str] = {}  # block of every live contact, with limits
        self._per_block: dict[str, int] = {}  # live contacts per block
        self.k = k
        # A full bucket probes its oldest contact for a newcomer only when that contact
        # went unheard this long (BEP 5's "questionable" node); 0 probes every time.
        self.questionable_after = questionable_after
        self._heard: dict[int, float] = {}  # when each proven contact last showed life
        self._local = id_int(local_id)
        self._buckets = _Buckets(now)
        self._all: dict[int, Contact] = {}  # every live contact
        self._occupied: set[int] = set()  # indices of buckets holding a contact

    def bucket_index(self, node_id: bytes) -> int:
        """The bucket for an id: the bit length of its distance, minus one."""
        return _index(id_int(node_id) ^ self._local)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, node_id: object) -> bool:
        if not isinstance(node_id, bytes):
            return False
        return id_int(node_id) in self._all

    def __iter__(self) -> Iterator[Contact]:
        for index in sorted(self._occupied):
            yield from self._buckets[index].contacts.values()

    def get(self, node_id: bytes) -> Contact | None:
        return self._all.get(id_int(node_id))

    def heard(self, node_id: bytes) -> float | None:
        """When a contact in the table last showed life (the `now` it was seen with)."""
        return self._heard.get(id_int(node_id))

    def add(self, contact: Contact, now: float) -> AddResult:
        """Record that `contact` was seen alive."""
        key = id_int(contact.node_id)
        if key == self._local:
            return AddResult(AddOutcome.IGNORED)
        bucket = self._buckets[_index(key ^ self._local)]
        bucket.last_touched = now
        known = bucket.contacts.get(key)
        if known is not None:
            if known is contact or known == contact:  # same address and routes: block counted
                bucket.contacts[key] = self._all[key] = contact
            elif not self._fits(bucket, key, contact):
                return AddResult(AddOutcome.LIMITED)  # moved into a block that is full
            else:
                self._place(bucket, key, contact)  # the address has changed
            bucket.contacts[key] = bucket.contacts.pop(key)  # now the most recently seen
            self._heard[key] = now
            return _UPDATED
        if not self._fits(bucket, key, contact):
            return AddResult(AddOutcome.LIMITED)
        if len(bucket.contacts) < self.k:
            self._place(bucket, key, contact)
            bucket.replacements.pop(key, None)
            self._heard[key] = now
            return AddResult(AddOutcome.ADDED)
        if key not in bucket.replacements and not self._queue_fits(bucket, contact):
            return AddResult(AddOutcome.LIMITED)
        bucket.replacements[key] = contact
        bucket.replacements.move_to_end(key)
        while len(bucket.replacements) > REPLACEMENTS_PER_BUCKET:
            bucket.replacements.popitem(last=False)
        if bucket.pinging is not None:
            return AddResult(AddOutcome.PENDING)  # one probe per bucket at a time
        oldest_key, oldest = next(iter(bucket.contacts.items()))
        heard = self._heard.get(oldest_key)
        if heard is not None and now - heard < self.questionable_after:
            return AddResult(AddOutcome.PENDING)  # the oldest is known good: no probe
        bucket.pinging = oldest_key
        return AddResult(AddOutcome.PENDING, oldest)

    def _fits(self, bucket: _Bucket, key: int, contact: Contact) -> bool:
        """Would `contact` (as `key`) stay within its block's limits in `bucket`?"""
        limits = self.limits
        if limits is None:
            return True
        block = limits.block_of(contact)
        if self._block.get(key) == block:
            return True  # already counted there
        in_table = self._per_block.get(block, 0)
        # None in the table: none in the bucket. Counted by C-level calls, no frame per
        # contact: this runs for every contact offered to a full table.
        in_bucket = list(map(self._block.get, bucket.contacts)).count(block) if in_table else 0
        return in_bucket < limits.per_bucket and in_table < limits.per_table

    def _queue_fits(self, bucket: _Bucket, contact: Contact) -> bool:
        """Replacements obey the per-bucket limit too, or one block would fill the queue."""
        if self.limits is None:
            return True
        block_of, block = self.limits.block_of, self.limits.block_of(contact)
        waiting = list(map(block_of, bucket.replacements.values())).count(block)
        return waiting < self.limits.per_bucket

    def _place(self, bucket: _Bucket, key: int, contact: Contact) -> None:
        """Put `contact` in `bucket` as a live contact, keeping the block counts."""
        bucket.contacts[key] = self._all[key] = contact
        self._occupied.add(_index(key ^ self._local))
        if self.limits is None:
            return
        block = self.limits.block_of(contact)
        old = self._block.get(key)
        if old != block:
            self._uncount(key)
            self._block[key] = block
            self._per_block[block] = self._per_block.get(block, 0) + 1

    def _uncount(self, key: int) -> None:
        old = self._block.pop(key, None)
        if old is not None:
            left = self._per_block[old] - 1
            if left:
                self._per_block[old] = left
            else:
                del self._per_block[old]

    def block_count(self, block: str) -> int:
        """Live contacts of one address block (0 without limits)."""
        return self._per_block.get(block, 0)

    def add_hearsay(self, contact: Contact, now: float) -> bool:
        """Take a contact another peer vouched for, only where a bucket has room.

        Such contacts are unproven, so they never displace a live one; a dead
        one is dropped after it fails to answer. Without them, a peer that
        joined by one self-lookup would know nobody in most of the id space.
        """
        key = self._place_last_in_line(contact)
        if key is None:
            return False
        self._buckets[_index(key ^ self._local)].last_touched = now
        return True

    def add_known(self, contact: Contact, heard: float) -> bool:
        """Take back a contact that answered us `heard` (before a restart), only where a
        bucket has room: fed most recently heard first, each bucket keeps the freshest
        k, least recently heard first in line to be probed. It never displaces anyone."""
        key = self._place_last_in_line(contact)
        if key is None:
            return False
        self._heard[key] = heard
        return True

    def _place_last_in_line(self, contact: Contact) -> int | None:
        """Place a new contact where its bucket has room, first in line to be probed
        (the least trusted); its key, or None if it is known or there is no room.
        A restarted peer offers its whole book here: the key is worked out once."""
        key = int.from_bytes(contact.node_id, "big")
        if key == self._local or key in self._all:
            return None
        bucket = self._buckets[_index(key ^ self._local)]
        if len(bucket.contacts) >= self.k or not self._fits(bucket, key, contact):
            return None
        self._place(bucket, key, contact)
        others = bucket.contacts
        del others[key]
        bucket.contacts = {key: contact, **others}  # the least recently seen
        return key

    def may_place(self, node_id: bytes) -> bool:
        """Could a new contact of this id be placed now (not ours, not in the table, its
        bucket not full)? A cheap test before making the contact at all."""
        # Asked of every acquaintance in a restarted peer's book: calls inlined.
        key = int.from_bytes(node_id, "big")
        if key == self._local or key in self._all:
            return False
        bucket = self._buckets.get(_index(key ^ self._local))
        return bucket is None or len(bucket.contacts) < self.k

    def room_for(self, contact: Contact, now: float) -> AddResult:
        """Room for `contact`, once proven? ADDED: in the table, or its bucket has room.
        PENDING with `ping`: full, its oldest quiet (or hearsay); a failed probe makes room."""
        key = id_int(contact.node_id)
        if key == self._local or key in self._all:
            return AddResult(AddOutcome.IGNORED if key == self._local else AddOutcome.ADDED)
        bucket = self._buckets[self.bucket_index(contact.node_id)]
        if not self._fits(bucket, key, contact):
            return AddResult(AddOutcome.LIMITED)
        if len(bucket.contacts) < self.k:
            return AddResult(AddOutcome.ADDED)
        oldest_key, oldest = next(iter(bucket.contacts.items()))
        heard = self._heard.get(oldest_key, -float("inf"))  # hearsay was never heard
        if bucket.pinging is not None or now - heard < self.questionable_after:
            return AddResult(AddOutcome.PENDING)
        return AddResult(AddOutcome.PENDING, oldest)

    def probing(self, contact: Contact) -> None:  # one probe of a bucket's oldest at a time
        self._buckets[self.bucket_index(contact.node_id)].pinging = id_int(contact.node_id)

    def ping_answered(self, contact: Contact, now: float) -> None:
        """The probed oldest contact is alive: it stays, newcomers wait as replacements."""
        bucket = self._buckets[self.bucket_index(contact.node_id)]
        bucket.pinging = None
        key = id_int(contact.node_id)
        if key in bucket.contacts:
            bucket.contacts[key] = bucket.contacts.pop(key)  # now the most recently seen
            bucket.last_touched = now
            self._heard[key] = now

    def remove(self, node_id: bytes) -> bool:
        """Drop an unresponsive contact; the freshest replacement takes its place."""
        bucket = self._buckets[self.bucket_index(node_id)]
        key = id_int(node_id)
        if bucket.pinging == key:
            bucket.pinging = None
        bucket.replacements.pop(key, None)
        if bucket.contacts.pop(key, None) is None:
            return False
        del self._all[key]
        self._heard.pop(key, None)
        self._uncount(key)
        # The freshest replacement whose block still has room takes the place.
        for new_key, new in reversed(bucket.replacements.items()):
            if self._fits(bucket, new_key, new):
                del bucket.replacements[new_key]
                self._place(bucket, new_key, new)
                break
        if not bucket.contacts:
            self._occupied.discard(self.bucket_index(node_id))
        return True

    def closest(
        self,
        target: bytes,
        count: int | None = None,
        exclude: bytes | None = None,
        accept: Callable[[Contact], bool] | None = None,
    ) -> list[Contact]:
        """The `count` (default k) known contacts closest to `target`, nearest first.

        `accept`, when given, passes over the contacts it says no to."""
        count = self.k if count is None else count
        skip = None if exclude is None else id_int(exclude)
        target_int = id_int(target)
        # The nearest buckets' contacts in a small dict of their own, then one sort of its
        # keys by a C-level key (`int.__xor__`): no Python call per contact, and the
        # picks come from that dict, still in cache, not from the whole table's.
        # Distances are distinct, so any exact pick is the same.
        pool: dict[int, Contact] = {}
        for contacts in self._buckets_nearest_first(self._local ^ target_int):
            if accept is not None:
                pool.update((key, c) for key, c in contacts.items() if key != skip and accept(c))
            else:
                pool.update(contacts)
                if skip is not None:
                    pool.pop(skip, None)
            if len(pool) >= count:
                break
        keys = sorted(pool, key=target_int.__xor__)
        return [pool[key] for key in keys[:count]]

    def _buckets_nearest_first(self, ours: int) -> Iterator[dict[int, Contact]]:
        """Each occupied bucket's contacts, by their distance to a target whose distance
        to us is `ours`, nearest first; the order is worked out only when the first
        bucket falls short, which most walks never ask for.

        By the XOR metric the bucket the target falls in holds the nearest contacts,
        all buckets below it come next (their distance to the target shares its top
        bit), then each bucket above it in turn. Below it, bucket i holds the distances
        whose bits above i are those of `ours` and whose bit i is the opposite: disjoint
        ranges, nearest first those where `ours` has bit i set (highest first), then
        those where it has not (lowest first)."""
        top = _index(ours)
        buckets = self._buckets
        first = buckets.get(top)
        if first is not None:
            yield first.contacts
        occupied = sorted(self._occupied)
        for i in reversed(occupied):
            if i < top and ours >> i & 1:
                yield buckets[i].contacts
        for i in occupied:
            if i < top and not ours >> i & 1:
                yield buckets[i].contacts
        for i in occupied:
            if i > top:
                yield buckets[i].contacts

    def stale_buckets(self, now: float, max_age: float) -> list[int]:
        """Buckets from our nearest contact out untouched for `max_age`, less empty ones
        nearer than our k-th nearest contact.
        Buckets nearer than our nearest contact are empty because no peer exists there,
        not because we lost touch; so are empty ones among our k nearest: a peer arriving
        there has us among its nearest and meets us on its own self-lookup."""
        buckets, occupied = self._buckets, sorted(self._occupied)
        held = itertools.accumulate(buckets.size(i) for i in occupied)  # contacts up to each bucket
        within = next((i for i, n in zip(occupied, held, strict=True) if n >= self.k), 0)
        return [
            i
            for i in range(occupied[0] if occupied else ID_BITS, ID_BITS)
            if now - buckets.touched(i) >= max_age and (i >= within or buckets.size(i))
        ]

    def bucket_size(self, index: int) -> int:
        return self._buckets.size(index)

    def empty_buckets_beyond_nearest(self) -> list[int]:
        """Empty buckets farther than our nearest contact, farthest first."""
        if not self._all:
            return []
        nearest = min(self._occupied)
        return [i for i in range(ID_BITS - 1, nearest, -1) if not self._buckets.size(i)]

    def random_id_in_bucket(self, index: int, random_bits: int) -> bytes:
        """An id whose distance to us falls in bucket `index`, from caller-supplied randomness."""
        low = random_bits & ((1 << index) - 1)
        value = self._local ^ ((1 << index) | low)
        return value.to_bytes(NODE_ID_BYTES, "big")

    def touch_bucket(self, index: int, now: float) -> None:
        self._buckets[index].last_touched = now


def _index(distance: int) -> int:
    """The bucket of a contact at this XOR distance from us: its bit length, minus one."""
    return max(distance.bit_length() - 1, 0)
