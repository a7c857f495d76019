"""The DHT on a live transport: the trio driver around the sans-IO pieces.

`DhtNode` answers DHT requests, runs lookups and quorum operations, and keeps its
routing table fresh; every remote call is under the configured timeout. Time comes
only from trio's clock, randomness only from the generator handed in, so the
simulator replays a seed exactly."""

from __future__ import annotations

import functools
import logging
import math
import random
from collections.abc import Callable, Collection, Iterable
from dataclasses import replace

import trio

from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.dial_back import DialBacks, check_key
from p2pbackup.dht.joining import join
from p2pbackup.dht.lookup import Lookup, LookupOutcome, Paced
from p2pbackup.dht.messages import (
    Announce,
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
from p2pbackup.dht.quorum import QuorumWrite
from p2pbackup.dht.record_store import RecordStore, near_key
from p2pbackup.dht.records import Record, covers
from p2pbackup.dht.replication import Replication
from p2pbackup.dht.route_check import check_routes, claim, drop_if_hearsay
from p2pbackup.dht.routing import AddOutcome, BlockLimits, RoutingTable
from p2pbackup.dht.silent import SilentPeers
from p2pbackup.dht.walk import Query, walk
from p2pbackup.errors import P2PBackupError, RecordRejected
from p2pbackup.mesh.gate import ROUTABLE
from p2pbackup.net.blocks import block_of
from p2pbackup.net.contact import Contact
from p2pbackup.net.reachability import dialable_outside, outside_any_lan
from p2pbackup.net.transport import Address, Remote, Reply, Transport
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.dht")

DHT_REQUESTS = (Ping, FindNode, StoreRecord, GetRecord, Announce)
_REFUSALS_LOGGED = 1024  # distinct writers whose refused records are logged
_FAILURES_KEPT = 4096  # peers with a failure counted (liars' made-up names too)


class DhtNode:
    """One peer's part of the Kademlia mesh."""

    def __init__(
        self,
        transport: Transport,
        node_id: bytes,
        config: DhtConfig,
        rng: random.Random,
        records: RecordStore | None = None,
        own: RecordStore | None = None,
    ) -> None:
        self.transport = transport
        self.node_id = node_id
        self.config = config
        self.rng = rng
        self.records = records if records is not None else RecordStore()
        # What this peer signed and published: it re-publishes these from here, so a
        # mesh that lost every replica heals from the writer alone (decision 0025).
        self.own = own if own is not None else RecordStore()
        self.table = RoutingTable(
            node_id,
            config.k,
            now=trio.current_time(),
            questionable_after=config.questionable_after,
            limits=BlockLimits(self.block_of, config.bucket_block_limit, config.table_block_limit),
        )
        # First-hand history: verified addresses and how long each peer has answered.
        self.peers = PeerBook()
        self._dial_backs = DialBacks(config.dial_back_cooldown)
        self._to_check, self._checks = trio.open_memory_channel[Contact](math.inf)
        self.replication = Replication(self)
        self._failures: dict[bytes, int] = {}  # unanswered in a row; _FAILURES_KEPT at most
        self.silent = SilentPeers(config.silent_backoff)  # timed out lately: not waited on
        self._refused: set[bytes] = set()  # writers whose refusal was logged
        self.barred: Collection[bytes] = frozenset()  # expelled: kept out of the table
        self.nursery: trio.Nursery | None = None

    # ---- serving -------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Background upkeep (eviction probes, bucket refresh, republish) until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._refresh_loop)
                nursery.start_soon(self.replication.republish_loop)
                for _ in range(self.config.dial_backs):
                    nursery.start_soon(self._check_loop)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self.nursery = None  # closed to new tasks: a join still walking must not start one

    async def handle(self, remote: Remote, message: Message) -> Message:
        """Answer one DHT request; the caller routes only DHT_REQUESTS here."""
        if isinstance(message, Ping):
            return Pong()
        self.observe(remote)
        if isinstance(message, Announce):  # only the sender's own id may be announced
            where = message.contact
            self.observe(replace(remote, listen=where.address, routes=where.routes))
            return Pong()
        if isinstance(message, FindNode):
            return Nodes(self._vouch_for(message.target, remote))
        if isinstance(message, StoreRecord):
            return await self._store_for(remote, message.record)
        if isinstance(message, GetRecord):
            return RecordReply(self.records.get(message.key), self._vouch_for(message.key, remote))
        raise P2PBackupError(f"not a DHT request: {message.TYPE}")

    async def _store_for(self, remote: Remote, record: Record) -> Stored:
        """Keep a replica's copy if the key is ours to keep and the budgets allow;
        acknowledged only once the copy is durable."""
        # The writer counts itself among the replicas it chose: it is not a rival.
        rivals = self.table.closest(record.key, exclude=remote.node_id)
        try:
            if not near_key(self.node_id, record.key, rivals, self.config.k):
                raise RecordRejected("this peer is not among the closest to the record's key")
            await self.records.store(record)
        except RecordRejected as exc:
            # One line per refused writer, not per refusal: a flood must not flood the log.
            if remote.node_id not in self._refused and len(self._refused) < _REFUSALS_LOGGED:
                self._refused.add(remote.node_id)
                log.info("refused a record from %s: %s", remote.node_id.hex()[:12], exc)
            return Stored(False, str(exc))
        return Stored(True)

    def _vouch_for(self, target: bytes, asker: Remote) -> tuple[Contact, ...]:
        """The contacts near `target` we hand out: only those that answered us there.
        Hearsay among them is checked now, so it can be handed out next time. An asker
        outside any LAN is not handed contacts it could dial only on one (a NATed peer's
        LAN address, named before it had relays): each cost it an RPC timeout."""
        outside = asker.far is not None and outside_any_lan(asker.far[0])
        nearest = self.table.closest(target, exclude=asker.node_id)
        unproven = self.peers.unverified(nearest)
        for contact in unproven:
            self._check(contact)
        if not unproven and not outside:
            return tuple(nearest)

        def vouched(contact: Contact) -> bool:
            return self.peers.verified(contact) and (not outside or dialable_outside(contact))

        return tuple(self.table.closest(target, exclude=asker.node_id, accept=vouched))

    def observe(self, remote: Remote) -> None:
        """A peer proved its id on a connection: it is alive and may belong in the table.

        Where it says it listens is only a claim: the contact enters the table once
        it answered us at that address, checked by a dial-back if need be; a remote
        the handshake admitted only to redeem an invite, or an expelled one, never does.
        Only a claim that could enter the table is dialled back (`claim`): one whose
        bucket is full of contacts heard lately would be dropped on arrival anyway (half
        of the traffic of a joining mesh), and it is checked when we are about to vouch
        for it.
        """
        self.silent.heard(remote.node_id)
        contact = remote.contact()
        if contact is None or remote.standing not in ROUTABLE or remote.node_id in self.barred:
            return
        if self.peers.verified(contact):
            self._seen(contact)
        else:
            claim(self, contact)

    def _check(self, contact: Contact) -> None:
        """Queue a dial-back to `contact`'s address (bounded; see `DialBacks`)."""
        if self._dial_backs.offer(check_key(contact), trio.current_time()):
            self._to_check.send_nowait(contact)

    async def _check_loop(self) -> None:
        """Dial claimed addresses themselves (never the claimant's own connection)."""
        async for contact in self._checks:
            try:
                if await check_routes(self, contact, self._dial_backs) is False:
                    drop_if_hearsay(self, contact)
            finally:
                self._dial_backs.done(check_key(contact))

    def _first_hand(self, dialled: Contact, reply: Reply, at: Address | None = None) -> bool:
        """Record what a reply proved: `dialled.node_id` answers at `dialled.address` (or
        at `at`, one of its routes). Only when the reply came over a connection we dialled
        to that address; one the remote opened to us proves its id, not where it listens.
        """
        if reply.dialled != (at or dialled.address) or reply.remote.node_id != dialled.node_id:
            return False
        self.peers.answered(dialled, trio.current_time())
        self._seen(dialled)
        return True

    def _seen(self, contact: Contact) -> None:
        self._failures.pop(contact.node_id, None)
        result = self.table.add(contact, trio.current_time())
        if result.outcome is AddOutcome.PENDING and result.ping is not None and self.nursery:
            self.nursery.start_soon(self._probe_oldest, result.ping)

    def unanswered(self, contact: Contact) -> None:
        """A request to `contact` went unanswered (a survey's as much as the DHT's): after
        `stale_after_failures` in a row it leaves the table, and nobody waits on it again."""
        count = self._failures.pop(contact.node_id, 0) + 1
        if count >= self.config.stale_after_failures:
            self.table.remove(contact.node_id)
            return
        self._failures[contact.node_id] = count  # the latest last: the oldest go first
        if len(self._failures) > _FAILURES_KEPT:
            del self._failures[next(iter(self._failures))]

    async def _probe_oldest(self, oldest: Contact) -> bool:
        try:
            reply = await self.transport.request(oldest, Ping(), self.config.rpc_timeout)
        except P2PBackupError:
            self.table.remove(oldest.node_id)
            return False
        self._first_hand(oldest, reply)
        self.table.ping_answered(oldest, trio.current_time())
        return True

    @property
    def checks_pending(self) -> int:
        """Dial-backs queued or under way."""
        return len(self._dial_backs.pending)

    def block_of(self, contact: Contact) -> str:
        """The contact's address block, under this mesh's exemptions (asked all day)."""
        return block_of(contact, self.config.exempt_blocks)

    def vetted(self, node_id: bytes, period: float) -> bool:
        """Has this peer answered us, first-hand, for at least `period` seconds?"""
        return self.peers.vetted(node_id, trio.current_time(), period)

    # ---- calls ---------------------------------------------------------

    async def call(self, target: Contact | Address, message: Message) -> Message | None:
        """One request under the RPC timeout; None when it failed (already accounted)."""
        started = trio.current_time()
        try:
            reply = await self.transport.request(target, message, self.config.rpc_timeout)
        except P2PBackupError as exc:
            log.debug("call to %s failed: %s", target, exc)
            if isinstance(target, Contact):
                self.unanswered(target)
                if trio.current_time() - started >= 0.99 * self.config.rpc_timeout:
                    self.silent.timed_out(target.node_id, trio.current_time())
            return None
        self.silent.heard(reply.remote.node_id)
        dialled = target if isinstance(target, Contact) else Contact(reply.remote.node_id, *target)
        if not self._first_hand(dialled, reply):
            self.observe(reply.remote)
        return reply.message

    async def ping(self, target: Contact | Address) -> Contact | None:
        """Ping an address (perhaps of unknown id); the contact it proved, if it answered."""
        try:
            reply = await self.transport.request(target, Ping(), self.config.rpc_timeout)
        except P2PBackupError as exc:
            log.info("ping %s failed: %s", target, exc)
            return None
        host, port = target.address if isinstance(target, Contact) else target
        contact = Contact(reply.remote.node_id, host, port)
        if not self._first_hand(contact, reply):
            self.observe(reply.remote)
            return reply.remote.contact() or contact
        if reply.remote.contact() != contact:
            self.observe(reply.remote)  # it names another address too: check that one
        return contact

    async def bootstrap(self, addresses: Iterable[Address]) -> int:
        return await join(self, addresses)  # ping them, then look ourselves up

    def learn_hearsay(self, contacts: Iterable[Contact]) -> None:
        now = trio.current_time()
        for contact in (c for c in contacts if c.node_id not in self.barred):
            self.table.add_hearsay(contact, now)

    async def lookup(
        self,
        target: bytes,
        count: int | None = None,
        *,
        keep_hearsay: bool = False,
        alpha: int | None = None,
        skip: Callable[[Contact], bool] | None = None,
        paced: Paced | None = None,
        meet_all: bool = False,
    ) -> LookupOutcome:
        """The `count` (default k) live peers closest to `target` (ourselves excluded).

        Fewer than k (a share set's neighbourhood) ends the walk once that many nearest
        answered, at half the cost. `alpha` overrides how many queries are in flight
        (a share set asks about as many peers as it has shares: fewer round trips).
        Peers named in answers enter the routing table only with `keep_hearsay`
        (joining, when the table is empty); otherwise only peers that answered
        us do, so a liar's made-up names cannot crowd out real ones.
        Contacts `skip` names (a caller's peers known to hang) are passed over unasked,
        as if they had failed: the walk would wait its whole timeout for each.
        `paced` runs each query of the walk (a caller's way to stop waiting for a peer
        that hangs, and to remember it); None from it counts as a failure.
        `meet_all` asks peers that timed out lately too: a joining walk is there to meet
        the mesh, and one that passed over a peer its first walk timed out on left it
        unmet until the hourly refresh.
        """
        wanted = self.config.k if count is None else max(1, min(count, self.config.k))
        parallel = self.config.alpha if alpha is None else max(1, alpha)
        state = Lookup(
            target,
            wanted,
            parallel,
            local_id=self.node_id,
            block_of=self.block_of,
            per_block=self.config.lookup_block_limit,
        )
        state.seed(self.table.closest(target))
        passed_over: list[Contact] = []

        async def query(contact: Contact) -> Iterable[Contact] | None:
            if (skip is not None and skip(contact)) or (
                not meet_all
                and self.silent
                and self.silent.silent(contact.node_id, trio.current_time())
            ):
                passed_over.append(contact)
                return None
            ask = functools.partial(self.call, contact, FindNode(target))
            reply = await (ask() if paced is None else paced(contact, ask))
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
        return LookupOutcome(state.result(), state.stats, tuple(passed_over))

    async def _drive(self, state: Lookup, query: Query, keep_hearsay: bool = False) -> None:
        await walk(state, query, self.learn_hearsay if keep_hearsay else None)
        self.table.touch_bucket(self.table.bucket_index(state.target), trio.current_time())

    # ---- records -------------------------------------------------------

    async def put(self, record: Record) -> QuorumWrite:
        """Write to the N closest peers; raises `QuorumNotReached` under W acks."""
        return await self.replication.put(record)

    async def get(self, key: bytes) -> Record | None:
        """Quorum read of the newest record under `key`, with read repair."""
        return await self.replication.get(key)

    async def publish(self, record: Record) -> QuorumWrite:
        """Write a record this peer signed: kept durably among its own first, then written
        by quorum; raises `QuorumNotReached` under W acks (the record stays kept, and is
        re-published on schedule)."""
        await self.own.store(record)
        return await self.replication.put(record)

    async def keep_own(self, record: Record) -> bool:
        """Keep a record this peer signed, as read from the mesh (a recovering owner);
        True when it told us something we did not keep yet."""
        if covers(self.own.get(record.key), record):
            return False
        await self.own.store(record)
        return True

    # ---- upkeep --------------------------------------------------------

    async def _refresh_loop(self) -> None:
        """Every interval, walk into each bucket nobody looked into meanwhile.

        The paper walks to the k nearest of a random id; stopping at the alpha nearest
        learns the same neighbourhood for a fraction of the messages (most of the idle
        traffic in a large mesh)."""
        interval = self.config.refresh_interval
        while True:
            await trio.sleep(interval * (0.9 + 0.2 * self.rng.random()))
            now = trio.current_time()
            for index in self.table.stale_buckets(now, interval):
                target = self.table.random_id_in_bucket(index, self.rng.getrandbits(160))
                await self.lookup(target, count=self.config.alpha)
