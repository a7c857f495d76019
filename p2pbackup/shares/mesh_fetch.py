"""Gathering one pack's shares from the mesh: the I/O around `Gathering`.

The lookup of the pack's neighbourhood and the share requests run side by
side. A lookup waits for every peer of its window, a hung one too, so when
this operation already knows a suspect holder, or the lookup is still going
after a stall interval, the fetch also starts from the routing table's
nearest peers, and the lookup's answer joins the queue when it comes. Time
is trio's clock: virtual in the simulator.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.shares.fetch_rules import owner_fetch
from p2pbackup.shares.gathering import Gathering, HolderMemory, Pace
from p2pbackup.shares.messages import ShareData

log = logging.getLogger("p2pbackup.shares")
Verify = Callable[[ShareData, ShareDescriptor | None], Awaitable[ShareDescriptor | str]]


@dataclass(frozen=True)
class _Found:
    contacts: list[Contact]


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
    ) -> None:
        self.dht = dht
        self.owner = owner
        self.pack_id = pack_id
        self.n = n
        self.timeout = timeout
        self.verify = verify
        self.gathering = Gathering(memory, pace, k, spare=spare)
        self.result = Gathered()
        self._send, self._receive = trio.open_memory_channel[_Found | _Answer](math.inf)

    async def run(self) -> Gathered:
        gathering = self.gathering
        now = trio.current_time
        suspects = gathering.memory.any_suspect(now())
        table_at: float | None = now() if suspects else now() + gathering.pace.stall_after()
        looking = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._look_up)
            while True:
                if looking and table_at is not None and now() >= table_at:
                    gathering.offer(self.dht.table.closest(self.pack_id, 2 * self.n))
                    table_at = None
                for contact in gathering.to_ask(now()):
                    self.result.asked += 1
                    nursery.start_soon(self._fetch, contact)
                if gathering.enough or (gathering.exhausted and not looking):
                    nursery.cancel_scope.cancel()
                    break
                waits = [gathering.deadline(), table_at if looking else None]
                event: _Found | _Answer | None = None
                with trio.move_on_at(min([w for w in waits if w is not None], default=math.inf)):
                    event = await self._receive.receive()
                if event is None:
                    gathering.check(now())
                elif isinstance(event, _Found):
                    looking = False
                    gathering.offer(event.contacts)
                else:
                    await self._take(event)
        return self.result

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
        try:
            request = owner_fetch(self.owner, self.pack_id, self.dht.node_id)
            reply = await self.dht.transport.request(contact, request, self.timeout)
        except P2PBackupError as exc:
            await self._send.send(_Answer(contact, None, f"{contact}: {exc}"))
            return
        self.dht.observe(reply.remote)
        share = reply.message if isinstance(reply.message, ShareData) else None
        await self._send.send(_Answer(contact, share))

    async def _take(self, answer: _Answer) -> None:
        gathering, result, now = self.gathering, self.result, trio.current_time()
        contact, share = answer.contact, answer.share
        if answer.problem is not None:
            gathering.failed(contact, now)
            result.problems.append(answer.problem)
            return
        if share is None:
            gathering.got_nothing(contact)
            return
        # Checked before the index is: a pack encoded again (decision 0034) has two sets
        # whose indices overlap, and a share of the other set is for `verify` to keep.
        verdict = await self.verify(share, result.descriptor)
        if isinstance(verdict, str):
            log.warning("bad share from %s: %s", contact, verdict)
            result.problems.append(f"{contact}: {verdict}")
            gathering.got_share(contact, now, good=False)
            return
        if share.index in result.shares:
            gathering.got_share(contact, now, good=False)
            return
        result.descriptor = verdict
        gathering.needed = verdict.k
        result.shares[share.index] = share.data
        gathering.got_share(contact, now, good=True)
