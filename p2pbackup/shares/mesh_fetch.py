"""Gathering one pack's shares from the mesh: the I/O around `Gathering`.

The fetch asks the routing table's nearest peers to the pack first: the
holders of its data shares are the nearest peers, and in a mesh whose
peers all fit in the table those are the holders, so a restore of a big
file made no lookup at all. A lookup (a question to each of up to n peers,
per pack) cost the holders a quarter of their work in a restore. The lookup
of the pack's neighbourhood starts only once the table falls short: a peer
asked answers with no share, fails, or stalls, or the table names too few
(decision 0053). Its answer joins the queue when it comes, and a lookup
skips peers known to hang or fail. Time is trio's clock: virtual in the
simulator.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.framing import SLOWEST_RATE
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.gathering import Gathering, HolderMemory, Pace
from p2pbackup.shares.messages import ShareData
from p2pbackup.shares.transfer_window import TransferGate, TransferTicket, room

log = logging.getLogger("p2pbackup.shares")
Verify = Callable[[ShareData, ShareDescriptor | None], Awaitable[ShareDescriptor | str]]


@dataclass(frozen=True)
class _Found:
    contacts: list[Contact]


@dataclass(frozen=True)
class _LetOut:
    """A request that waited for room on the link is on it: its stall clock runs."""


@dataclass(frozen=True)
class _Answer:
    contact: Contact
    share: ShareData | None
    problem: str | None = None


@dataclass
class Gathered:
    """What one fetch brought: good shares by index, their descriptor, what went wrong."""

    shares: dict[int, bytes] = field(default_factory=dict)
    descriptor: ShareDescriptor | None = None
    problems: list[str] = field(default_factory=list)
    asked: int = 0


class PackFetch:
    """Fetches one pack's shares until k good ones are in or nobody is left to ask."""

    def __init__(
        self,
        dht: DhtNode,
        owner: Identity,
        pack_id: bytes,
        *,
        k: int,
        n: int,
        timeout: float,
        memory: HolderMemory,
        pace: Pace,
        verify: Verify,
        spare: int = 1,
        gate: TransferGate | None = None,
        expected: int = 0,
    ) -> None:
        """With `gate`, each request waits for room on the owner's downlink for a share
        of `expected` bytes (decision 0098)."""
        self.dht = dht
        self.owner = owner
        self.pack_id = pack_id
        self.n = n
        self.timeout = timeout
        self.verify = verify
        self.gate = gate
        self.expected = expected
        self._tickets: dict[bytes, TransferTicket] = {}  # node id -> its request's room
        self.gathering = Gathering(memory, pace, k, spare=spare)
        self.result = Gathered()
        self.looked_up = False
        self._send, self._receive = trio.open_memory_channel[_Found | _Answer | _LetOut](math.inf)

    async def run(self) -> Gathered:
        gathering, now = self.gathering, trio.current_time
        nearby = self.dht.table.closest(self.pack_id, 2 * self.n)
        gathering.offer(nearby)
        looking = False  # a lookup on its way
        async with trio.open_nursery() as nursery:

            def look_up() -> None:
                nonlocal looking
                if not self.looked_up:
                    self.looked_up = looking = True
                    nursery.start_soon(self._look_up)

            if len(nearby) < gathering.needed:
                look_up()
            while True:
                for contact in gathering.to_ask(now()):
                    self.result.asked += 1
                    self._listen(contact)
                    nursery.start_soon(self._fetch, contact)
                if gathering.enough or (gathering.exhausted and self.looked_up and not looking):
                    nursery.cancel_scope.cancel()
                    break
                if gathering.exhausted:
                    look_up()
                event: _Found | _Answer | _LetOut | None = None
                with trio.move_on_at(_or_never(gathering.deadline())):
                    event = await self._receive.receive()
                if event is None:  # a request stalled, or began to wait for the link
                    for contact in gathering.listening():
                        self._listen(contact)
                    late = gathering.check(now())
                    for contact in late:  # a holder that may hang keeps no room
                        if self.gate is not None and contact.node_id in self._tickets:
                            self.gate.give_up(self._tickets[contact.node_id])
                    if late or not gathering.any_waiting:
                        look_up()
                elif isinstance(event, _LetOut):
                    continue  # its stall clock runs now: look at the deadline again
                elif isinstance(event, _Found):
                    looking = False
                    gathering.offer(event.contacts)
                elif not await self._take(event):
                    look_up()
        return self.result

    def _listen(self, contact: Contact) -> None:
        """Tell the gathering how many bytes have come from `contact` so far."""
        received = self.dht.transport.received_from(contact.node_id)
        self.gathering.heard(contact, received, trio.current_time())

    async def _look_up(self) -> None:
        try:
            memory = self.gathering.memory

            def skip(contact: Contact) -> bool:  # known to hang or fail: not worth a wait
                return memory.suspect(contact.node_id, trio.current_time())

            contacts = (await self.dht.lookup(self.pack_id, alpha=self.n, skip=skip)).contacts
        except P2PBackupError:
            contacts = []
        await self._send.send(_Found(list(contacts)))

    async def _fetch(self, contact: Contact) -> None:
        answer: _Answer
        async with self._on_link(contact) as ticket:
            try:
                request = owner_fetch(self.owner, self.pack_id, self.dht.node_id)
                timeout = self.timeout + self.expected / SLOWEST_RATE
                reply = await self.dht.transport.request(contact, request, timeout)
            except P2PBackupError as exc:
                answer = _Answer(contact, None, f"{contact}: {exc}")
            else:
                self.dht.observe(reply.remote)
                share = reply.message if isinstance(reply.message, ShareData) else None
                ticket.through = share is not None
                answer = _Answer(contact, share)
        await self._send.send(answer)

    @contextlib.asynccontextmanager
    async def _on_link(self, contact: Contact) -> AsyncIterator[TransferTicket]:
        """Room on the downlink for the request to `contact`; the gathering is told when
        the request waits for it and when it gets it."""
        if self.gate is None:
            async with room(None, 0) as ticket:
                yield ticket
            return
        waits = not self.gate.admits(self.expected)
        if waits:
            self.gathering.waits(contact)
        async with self.gate.slot(self.expected) as ticket:
            self._tickets[contact.node_id] = ticket
            self.gathering.let_out(contact, trio.current_time(), ticket.transfer_seconds)
            self._listen(contact)
            try:
                if waits:
                    await self._send.send(_LetOut())
                yield ticket
            finally:
                del self._tickets[contact.node_id]

    async def _take(self, answer: _Answer) -> bool:
        """Count one answer in; whether it brought a good share."""
        gathering, result, now = self.gathering, self.result, trio.current_time()
        contact, share = answer.contact, answer.share
        if answer.problem is not None:
            gathering.failed(contact, now)
            result.problems.append(answer.problem)
            return False
        if share is None:
            gathering.got_nothing(contact)
            return False
        # Checked before the index is: a pack encoded again (decision 0034) has two sets
        # whose indices overlap, and a share of the other set is for `verify` to keep.
        verdict = await self.verify(share, result.descriptor)
        if isinstance(verdict, str):
            log.warning("bad share from %s: %s", contact, verdict)
            result.problems.append(f"{contact}: {verdict}")
            gathering.got_share(contact, now, good=False)
            return False
        if share.index in result.shares:
            gathering.got_share(contact, now, good=False)
            return False
        result.descriptor = verdict
        gathering.needed = verdict.k
        result.shares[share.index] = share.data
        gathering.got_share(contact, now, good=True)
        return True


def _or_never(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline
