"""The DHT on a live transport: the trio driver around the sans-IO pieces.

`DhtNode` answers DHT requests, runs lookups and quorum operations, and keeps
its routing table fresh. Every remote call goes through the transport with
the configured timeout; time comes only from trio's clock, randomness only
from the generator handed in, so the simulator replays a seed exactly.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import trio

from p2pbackup.base.ids import distance
from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.lookup import Lookup, LookupStats
from p2pbackup.dht.messages import (
    FindNode,
    GetRecord,
    Nodes,
    Ping,
    Pong,
    RecordReply,
    Stored,
    StoreRecord,
)
from p2pbackup.dht.peer_book import PeerBook
from p2pbackup.dht.quorum import QuorumRead, QuorumWrite
from p2pbackup.dht.record_store import RecordStore, near_key
from p2pbackup.dht.records import Record, covers
from p2pbackup.dht.routing import AddOutcome, RoutingTable
from p2pbackup.errors import P2PBackupError, QuorumNotReached, RecordRejected
from p2pbackup.net.blocks import block_of
from p2pbackup.net.contact import Contact
from p2pbackup.net.transport import Address, Remote, Transport
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.dht")

DHT_REQUESTS = (Ping, FindNode, StoreRecord, GetRecord)
_REFUSALS_LOGGED = 1024  # distinct writers whose refused records are logged


@dataclass(frozen=True)
class LookupOutcome:
    contacts: list[Contact]
    stats: LookupStats


class DhtNode:
    """One peer's part of the Kademlia mesh."""

    def __init__(
        self,
        transport: Transport,
        node_id: bytes,
        config: DhtConfig,
        rng: random.Random,
        records: RecordStore | None = None,
    ) -> None:
        self.transport = transport
        self.node_id = node_id
        self.config = config
        self.rng = rng
        self.records = records if records is not None else RecordStore()
        self.table = RoutingTable(
            node_id,
            config.k,
            now=trio.current_time(),
            questionable_after=config.questionable_after,
        )
        # First-hand history: verified addresses and how long each peer has answered.
        self.peers = PeerBook()
        self._failures: dict[bytes, int] = {}
        self._refused: set[bytes] = set()  # writers whose refusal was logged
        self._nursery: trio.Nursery | None = None

    # ---- serving -------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background upkeep (eviction probes, bucket refresh, republish) until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._refresh_loop)
            nursery.start_soon(self._republish_loop)
            task_status.started()
            await trio.sleep_forever()

    async def handle(self, remote: Remote, message: Message) -> Message:
        """Answer one DHT request; the caller routes only DHT_REQUESTS here."""
        self.observe(remote)
        if isinstance(message, Ping):
            return Pong()
        if isinstance(message, FindNode):
            return Nodes(tuple(self.table.closest(message.target, exclude=remote.node_id)))
        if isinstance(message, StoreRecord):
            return self._store_for(remote, message.record)
        if isinstance(message, GetRecord):
            contacts = tuple(self.table.closest(message.key, exclude=remote.node_id))
            return RecordReply(self.records.get(message.key), contacts)
        raise P2PBackupError(f"not a DHT request: {message.TYPE}")

    def _store_for(self, remote: Remote, record: Record) -> Stored:
        """Keep a replica's copy if the key is ours to keep and the budgets allow."""
        try:
            if not near_key(
                self.node_id, record.key, self._closest(record.key, remote), self.config.k
            ):
                raise RecordRejected("this peer is not among the closest to the record's key")
            self.records.put(record)
        except RecordRejected as exc:
            # One line per refused writer, not per refusal: a flood must not flood the log.
            if remote.node_id not in self._refused and len(self._refused) < _REFUSALS_LOGGED:
                self._refused.add(remote.node_id)
                log.info("refused a record from %s: %s", remote.node_id.hex()[:12], exc)
            return Stored(False, str(exc))
        return Stored(True)

    def _closest(self, key: bytes, writer: Remote) -> list[Contact]:
        # The writer counts itself among the replicas it chose: it is not a rival.
        return self.table.closest(key, exclude=writer.node_id)

    def observe(self, remote: Remote) -> None:
        """A peer proved its id on a connection: it is alive and belongs in the table."""
        contact = remote.contact()
        if contact is not None:
            self._seen(contact)

    def _seen(self, contact: Contact) -> None:
        self._failures.pop(contact.node_id, None)
        result = self.table.add(contact, trio.current_time())
        if result.outcome is AddOutcome.PENDING and result.ping is not None and self._nursery:
            self._nursery.start_soon(self._probe_oldest, result.ping)

    def _failed(self, contact: Contact) -> None:
        count = self._failures.get(contact.node_id, 0) + 1
        if count >= self.config.stale_after_failures:
            self._failures.pop(contact.node_id, None)
            self.table.remove(contact.node_id)
        else:
            self._failures[contact.node_id] = count

    async def _probe_oldest(self, oldest: Contact) -> None:
        try:
            await self.transport.request(oldest, Ping(), self.config.rpc_timeout)
        except P2PBackupError:
            self.table.remove(oldest.node_id)
        else:
            self.table.ping_answered(oldest, trio.current_time())

    def block_of(self, contact: Contact) -> str:
        """The contact's address block, under this mesh's exemptions."""
        return block_of(contact, self.config.exempt_blocks)

    def vetted(self, node_id: bytes, period: float) -> bool:
        """Has this peer answered us, first-hand, for at least `period` seconds?"""
        return self.peers.vetted(node_id, trio.current_time(), period)

    # ---- calls ---------------------------------------------------------

    async def call(self, target: Contact | Address, message: Message) -> Message | None:
        """One request under the RPC timeout; None when it failed (already accounted)."""
        try:
            reply = await self.transport.request(target, message, self.config.rpc_timeout)
        except P2PBackupError as exc:
            log.debug("call to %s failed: %s", target, exc)
            if isinstance(target, Contact):
                self._failed(target)
            return None
        if isinstance(target, Contact):
            self.peers.answered(target, trio.current_time())
        self.observe(reply.remote)
        return reply.message

    async def ping(self, target: Contact | Address) -> Contact | None:
        """Ping an address (perhaps of unknown id); the contact it proved, if it answered."""
        try:
            reply = await self.transport.request(target, Ping(), self.config.rpc_timeout)
        except P2PBackupError as exc:
            log.info("ping %s failed: %s", target, exc)
            return None
        contact = reply.remote.contact()
        if contact is None:
            host, port = target.address if isinstance(target, Contact) else target
            contact = Contact(reply.remote.node_id, host, port)
        host, port = target.address if isinstance(target, Contact) else target
        self.peers.answered(Contact(reply.remote.node_id, host, port), trio.current_time())
        self._seen(contact)
        return contact

    async def bootstrap(self, addresses: Iterable[Address]) -> int:
        """Join through known addresses: ping them, then look ourselves up."""
        joined = 0
        for address in addresses:
            if await self.ping(address) is not None:
                joined += 1
        if joined:
            await self.lookup(self.node_id, keep_hearsay=True)
            await self._fill_empty_buckets()
        return joined

    async def _fill_empty_buckets(self) -> None:
        """Ask for contacts in every empty bucket beyond our nearest neighbour.

        The self-lookup only walks our own neighbourhood; a bucket with no
        contact at all would strand lookups into that part of the id space.
        The paper refreshes those buckets with full lookups; one question to
        the contact nearest a random id in the bucket fills it almost always
        at a twentieth of the cost, and the periodic refresh mends the rest.
        """
        for index in self.table.empty_buckets_beyond_nearest():
            if self.table.bucket_size(index):
                continue  # an earlier answer filled it already
            target = self.table.random_id_in_bucket(index, self.rng.getrandbits(160))
            for contact in self.table.closest(target, 1):
                reply = await self.call(contact, FindNode(target))
                if isinstance(reply, Nodes):
                    self._learn_hearsay(reply.contacts)

    def _learn_hearsay(self, contacts: Iterable[Contact]) -> None:
        now = trio.current_time()
        for contact in contacts:
            self.table.add_hearsay(contact, now)

    async def lookup(
        self,
        target: bytes,
        count: int | None = None,
        *,
        keep_hearsay: bool = False,
        alpha: int | None = None,
    ) -> LookupOutcome:
        """The `count` (default k) live peers closest to `target` (ourselves excluded).

        A caller that needs only a share set's neighbourhood asks for fewer than
        k: the walk ends once that many nearest have answered, at half the cost.
        `alpha` overrides how many queries are in flight at once: placing or
        fetching a share set asks about as many peers as it has shares, so the
        walk needs fewer round trips (in a mesh of ten, one instead of three).
        Peers named in answers enter the routing table only with `keep_hearsay`
        (joining, when the table is empty); otherwise only peers that answered
        us do, so a liar's made-up names cannot crowd out real ones.
        """
        wanted = self.config.k if count is None else max(1, min(count, self.config.k))
        parallel = self.config.alpha if alpha is None else max(1, alpha)
        state = Lookup(target, wanted, parallel, local_id=self.node_id)
        state.seed(self.table.closest(target))

        async def query(contact: Contact) -> Iterable[Contact] | None:
            reply = await self.call(contact, FindNode(target))
            return reply.contacts if isinstance(reply, Nodes) else None

        await self._drive(state, query, keep_hearsay)
        # Everyone we started from failed (gone, or names a liar gave us): start again
        # from more of the table rather than report an empty neighbourhood.
        widen = 2
        while not state.result() and widen <= 8:
            if not state.seed(self.table.closest(target, self.config.k * widen)):
                break
            await self._drive(state, query, keep_hearsay)
            widen *= 2
        return LookupOutcome(state.result(), state.stats)

    async def _drive(
        self,
        state: Lookup,
        query: Callable[[Contact], Awaitable[Iterable[Contact] | None]],
        keep_hearsay: bool = False,
    ) -> None:
        send, receive = trio.open_memory_channel[tuple[Contact, Iterable[Contact] | None]](math.inf)

        async def one(contact: Contact) -> None:
            await send.send((contact, await query(contact)))

        async with trio.open_nursery() as nursery:
            pending = 0
            while True:
                for contact in state.next_queries():
                    nursery.start_soon(one, contact)
                    pending += 1
                if pending == 0:
                    break
                contact, contacts = await receive.receive()
                pending -= 1
                if contacts is None:
                    state.on_failure(contact)
                else:
                    state.on_reply(contact, contacts)
                    if keep_hearsay:
                        self._learn_hearsay(contacts)
        self.table.touch_bucket(self.table.bucket_index(state.target), trio.current_time())

    # ---- records -------------------------------------------------------

    async def put(self, record: Record) -> QuorumWrite:
        """Write to the N closest peers; raises `QuorumNotReached` under W acks."""
        record.check()
        replicas, include_self = await self._replica_set(record.key)
        write = QuorumWrite(len(replicas) + include_self, self.config.write_quorum)
        if include_self:
            self._store_locally(record, write)
        await self._store_on(replicas, record, write)
        if not write.succeeded:
            reasons = "; ".join(sorted(set(write.refusals))) or "no answer"
            raise QuorumNotReached(
                f"record stored on {len(write.acks)} of {write.targets} peers, "
                f"{write.w} needed ({reasons})"
            )
        return write

    async def _replica_set(self, key: bytes) -> tuple[list[Contact], bool]:
        """The N closest peers to `key` among the mesh and ourselves; and whether we are one."""
        found = (await self.lookup(key)).contacts
        n = self.config.replicas
        mine = distance(self.node_id, key)
        closer = sum(1 for c in found[:n] if distance(c.node_id, key) < mine)
        include_self = closer < n
        return found[: n - 1 if include_self else n], include_self

    def _store_locally(self, record: Record, write: QuorumWrite) -> None:
        local = Contact(self.node_id, *self.transport.listen)
        try:
            self.records.put(record)
        except RecordRejected as exc:
            write.on_refusal(str(exc))
        else:
            write.on_ack(local)

    async def _store_on(self, replicas: list[Contact], record: Record, write: QuorumWrite) -> None:
        async def store(contact: Contact) -> None:
            reply = await self.call(contact, StoreRecord(record))
            if isinstance(reply, Stored) and reply.ok:
                write.on_ack(contact)
            elif isinstance(reply, Stored):
                write.on_refusal(reply.reason)
            else:
                write.on_failure()

        async with trio.open_nursery() as nursery:
            for contact in replicas:
                nursery.start_soon(store, contact)

    async def get(self, key: bytes) -> Record | None:
        """Quorum read of the newest record under `key`, with read repair."""
        replicas, include_self = await self._replica_set(key)
        read = QuorumRead(key, self.config.read_quorum)
        if include_self:
            read.on_answer(Contact(self.node_id, *self.transport.listen), self.records.get(key))

        async def fetch(contact: Contact) -> None:
            reply = await self.call(contact, GetRecord(key))
            if isinstance(reply, RecordReply):
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
        stale = [c for c in read.stale() if c.node_id != self.node_id]
        if merged is not None and include_self and not covers(self.records.get(key), merged):
            self._store_locally(merged, QuorumWrite(1, 1))
        if merged is not None and stale:
            await self._store_on(stale, merged, QuorumWrite(len(stale), len(stale)))
        return merged

    # ---- upkeep --------------------------------------------------------

    async def _refresh_loop(self) -> None:
        """Every interval, walk into each bucket nobody looked into meanwhile.

        The paper walks the whole way to the k nearest of a random id; a walk
        that stops at the alpha nearest learns the same neighbourhood of the
        bucket for a fraction of the messages, which in a large mesh are most
        of the idle traffic.
        """
        interval = self.config.refresh_interval
        while True:
            await trio.sleep(interval * (0.9 + 0.2 * self.rng.random()))
            now = trio.current_time()
            for index in self.table.stale_buckets(now, interval):
                target = self.table.random_id_in_bucket(index, self.rng.getrandbits(160))
                await self.lookup(target, count=self.config.alpha)

    async def _republish_loop(self) -> None:
        """Push held records to the current closest peers, so churn does not erase them."""
        interval = self.config.republish_interval
        while True:
            await trio.sleep(interval * (0.9 + 0.2 * self.rng.random()))
            for record in self.records:
                replicas, _ = await self._replica_set(record.key)
                await self._store_on(replicas, record, QuorumWrite(len(replicas), 1))
