"""Quorum writes and reads of records over a node's lookups and calls.

Replicas are the N nearest peers to a key that answered us first-hand,
spread over address blocks (`replicas.spread_over_blocks`); a read counts
only answers from replicas that answered at the address we dialled, so a
flood of identities cannot hold the only copies nor outvote the real ones
(decision 0023).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from p2pbackup.base.ids import distance
from p2pbackup.dht.messages import GetRecord, RecordReply, Stored, StoreRecord
from p2pbackup.dht.quorum import QuorumRead, QuorumWrite
from p2pbackup.dht.records import Record, covers
from p2pbackup.dht.replicas import spread_over_blocks
from p2pbackup.errors import QuorumNotReached, RecordRejected
from p2pbackup.net.contact import Contact

if TYPE_CHECKING:
    from p2pbackup.dht.node import DhtNode

log = logging.getLogger("p2pbackup.dht")


class Replication:
    """One node's record writes, reads and republishing."""

    def __init__(self, node: DhtNode) -> None:
        self.node = node

    async def put(self, record: Record) -> QuorumWrite:
        """Write to the N closest peers; raises `QuorumNotReached` under W acks."""
        record.check()
        replicas, include_self = await self._replica_set(record.key)
        write = QuorumWrite(len(replicas) + include_self, self.node.config.write_quorum)
        if include_self:
            await self._store_locally(record, write)
        await self._store_on(replicas, record, write)
        if not write.succeeded:
            reasons = "; ".join(sorted(set(write.refusals))) or "no answer"
            raise QuorumNotReached(
                f"record stored on {len(write.acks)} of {write.targets} peers, "
                f"{write.w} needed ({reasons})"
            )
        return write

    async def _replica_set(self, key: bytes) -> tuple[list[Contact], bool]:
        """The N closest peers to `key` among the mesh and ourselves; and whether we are one.

        Only peers that answered us first-hand, spread over address blocks.
        """
        replicas, include_self, _ = await self._replicas_seen(key)
        return replicas, include_self

    async def _replicas_seen(
        self, key: bytes, meet_all: bool = False
    ) -> tuple[list[Contact], bool, bool]:
        """`_replica_set`, and whether the lookup passed over a peer that may be a nearer
        replica than those (one that timed out lately: see `DhtNode.lookup`)."""
        outcome = await self.node.lookup(key, meet_all=meet_all)
        found = [c for c in outcome.contacts if self.node.peers.verified(c)]
        n = self.node.config.replicas
        nearest = spread_over_blocks(found, n, self.node.block_of)
        mine = distance(self.node.node_id, key)
        include_self = sum(1 for c in nearest if distance(c.node_id, key) < mine) < n
        if include_self:
            nearest = spread_over_blocks(found, n - 1, self.node.block_of)
        # A replica set short of its size would have taken any peer passed over.
        full = len(nearest) >= n - include_self
        farthest = max((distance(c.node_id, key) for c in nearest), default=0)
        missed = any(not full or distance(c.node_id, key) < farthest for c in outcome.passed_over)
        return nearest, include_self, missed

    async def _store_locally(self, record: Record, write: QuorumWrite) -> None:
        """Our own copy as a replica counts as an ack only once it is durable."""
        local = Contact(self.node.node_id, *self.node.transport.listen)
        try:
            await self.node.records.store(record)
        except RecordRejected as exc:
            write.on_refusal(str(exc))
        else:
            write.on_ack(local)

    async def _store_on(self, replicas: list[Contact], record: Record, write: QuorumWrite) -> None:
        async def store(contact: Contact) -> None:
            reply = await self.node.call(contact, StoreRecord(record))
            if isinstance(reply, Stored) and reply.ok:
                write.on_ack(contact)
            elif isinstance(reply, Stored):
                write.on_refusal(reply.reason)
            else:
                write.on_failure()

        async with trio.open_nursery() as nursery:
            for contact in replicas:
                nursery.start_soon(store, contact)

    async def republish_loop(self) -> None:
        """Push held records to the current closest peers, so churn does not erase them;
        and write our own records again by quorum, so lost replicas come back."""
        interval = self.node.config.republish_interval
        while True:
            await trio.sleep(interval * (0.9 + 0.2 * self.node.rng.random()))
            await self.republish_own()
            for record in self.node.records:
                if self.node.own.get(record.key) is None:  # ours went out just above
                    await self.republish(record)

    async def republish_own(self) -> int:
        """Quorum-write every record this peer signed; how many reached their quorum."""
        written = 0
        for record in self.node.own:
            try:
                await self.put(record)
            except (QuorumNotReached, RecordRejected) as exc:
                log.info("re-publishing record %s: %s", record.key.hex()[:12], exc)
            else:
                written += 1
        return written

    async def republish(self, record: Record) -> None:
        """Push a held record to its current replicas, so churn does not erase it."""
        replicas, _ = await self._replica_set(record.key)
        await self._store_on(replicas, record, QuorumWrite(len(replicas), 1))

    async def get(self, key: bytes) -> Record | None:
        """Quorum read of the newest record under `key`, with read repair.

        "None" from peers that stood in for replicas the lookup passed over (they timed
        out lately) says nothing: they hold no copy either way. Such a read asks again,
        those peers too, before it says the record is not there; a recovering owner
        was told it had no snapshots when its index's replicas were slow a moment."""
        record, missed = await self._read(key)
        if record is None and missed:
            record, _ = await self._read(key, meet_all=True)
        return record

    async def _read(self, key: bytes, meet_all: bool = False) -> tuple[Record | None, bool]:
        """The quorum read, and whether a nearer replica may have been passed over."""
        replicas, include_self, missed = await self._replicas_seen(key, meet_all)
        read = QuorumRead(key, self.node.config.read_quorum)
        if include_self:
            local = Contact(self.node.node_id, *self.node.transport.listen)
            read.on_answer(local, self.node.records.get(key))

        async def fetch(contact: Contact) -> None:
            reply = await self.node.call(contact, GetRecord(key))
            # Only a replica that answered at the address we dialled counts toward R.
            if isinstance(reply, RecordReply) and self.node.peers.verified(contact):
                read.on_answer(contact, reply.record)
            else:
                read.on_failure()

        async with trio.open_nursery() as nursery:
            for contact in replicas:
                nursery.start_soon(fetch, contact)
        if not read.enough:
            raise QuorumNotReached(
                f"{len(read.answers)} of {len(replicas) + include_self} replicas answered, "
                f"{read.r} needed"
            )
        merged = read.merged()
        stale = [c for c in read.stale() if c.node_id != self.node.node_id]
        if merged is not None and include_self and not covers(self.node.records.get(key), merged):
            await self._store_locally(merged, QuorumWrite(1, 1))
        if merged is not None and stale:
            await self._store_on(stale, merged, QuorumWrite(len(stale), len(stale)))
        return merged, missed
