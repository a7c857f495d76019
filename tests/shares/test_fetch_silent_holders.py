"""A restore's first data shares asked of holders that then hang, over real TCP.

The index and tree packs' shares, of a few hundred bytes, came back at once and set
the fetch pace to its floor and the downlink's measured rate near nothing. The first
data shares, let out to holders that had just hung, then held the whole window: each
request's stall interval grew by its bytes' time at the slowest rate (21 s for 1.4 MB,
twice that for the second), and every request to a live holder waited for room. A
restore under load stood still for 35 s. A holder that sends no byte stalls at the
bare interval now, whatever its bytes would take.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import cast

import trio

from p2pbackup.codec.descriptor import ShareDescriptor
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.node import DhtNode
from p2pbackup.net.contact import Contact
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.gathering import HolderMemory, Pace, StallRule
from p2pbackup.shares.mesh_fetch import PackFetch
from p2pbackup.shares.messages import GetShare, ShareData
from p2pbackup.shares.transfer_window import TransferGate
from p2pbackup.wire.messages import Message
from tests.net.bounds_support import contact_of, serving

SHARE = 1_400_000  # a 4 MiB pack's share at 3-of-n
HUNG = 3  # as many as the fetch asks first: whichever it lets out first hangs
LIVE = 3
OPTIONS = TcpOptions(handshake_timeout=2.0, frame_timeout=2.0)


@dataclass
class _Table:
    contacts: list[Contact]

    def closest(self, target: bytes, count: int) -> list[Contact]:
        return self.contacts[:count]


class _Dht:
    """What a fetch uses of its peer's DHT: the table's nearest, and the transport."""

    def __init__(self, transport: TcpTransport, holders: list[Contact]) -> None:
        self.transport = transport
        self.node_id = transport.identity.node_id
        self.table = _Table(holders)

    def observe(self, remote: Remote) -> None:
        pass

    async def lookup(self, target: bytes, **_: object) -> SimpleNamespace:
        return SimpleNamespace(contacts=self.table.contacts)


def _holder(index: int, hangs: bool) -> Callable[[Remote, Message], Awaitable[Message]]:
    async def answer(remote: Remote, message: Message) -> Message:
        assert isinstance(message, GetShare)
        if hangs:
            await trio.sleep_forever()
        return ShareData(index, b"descriptor", bytes([index]) * SHARE)

    return answer


async def test_holders_hanging_under_the_first_data_shares_cost_one_bare_interval(
    nursery: trio.Nursery,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        holders = [
            await stack.enter_async_context(serving(nursery, OPTIONS, _holder(i, i < HUNG)))
            for i in range(HUNG + LIVE)
        ]
        owner = await stack.enter_async_context(serving(nursery, OPTIONS))
        gate, rule = TransferGate(), StallRule()
        pace = Pace(rule)
        for _ in range(7):  # the index and tree packs: tiny shares, back at once
            async with gate.slot(300) as ticket:
                await trio.sleep(0.002)
                ticket.through = True
            pace.observe(0.002)

        async def verify(share: ShareData, _: ShareDescriptor | None) -> ShareDescriptor:
            return cast(ShareDescriptor, SimpleNamespace(k=3))

        fetch = PackFetch(
            cast(DhtNode, _Dht(owner, [contact_of(h) for h in holders])),
            Identity.generate(),
            b"p" * 20,
            k=3,
            n=HUNG + LIVE,
            timeout=60.0,
            memory=HolderMemory(rule),
            pace=pace,
            verify=verify,
            spare=0,
            gate=gate,
            expected=SHARE,
        )
        # A bare interval is a second here; a hung holder's bytes' time alone was 15 s.
        with trio.fail_after(10):
            got = await fetch.run()
    assert sorted(got.shares) == [3, 4, 5]  # the live holders'
