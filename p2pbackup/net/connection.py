"""One authenticated TCP connection's state: the calls awaiting replies on it,
the requests being answered on it, and the bytes of replies it owes the far end.

The owed bytes are kept here because they are what a remote that never reads
its replies would make this peer hold: the reader stops taking requests while
they exceed a budget, and closing the connection drops them all at once.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import trio

from p2pbackup.errors import WireError
from p2pbackup.net.framing import unread
from p2pbackup.net.handshake import SecureChannel
from p2pbackup.net.limits import ByteBudget
from p2pbackup.net.transport import Remote
from p2pbackup.wire.frames import FrameDecoder
from p2pbackup.wire.messages import REQUEST_ID_MAX, Message


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A frame's payload on its way out; replies count against the reply budget."""

    payload: bytes
    reply: bool

    def __len__(self) -> int:
        return len(self.payload)


@dataclass(eq=False)
class Ticket:
    """One request being answered: the tokens it holds and the bytes it weighs."""

    limiter: trio.CapacityLimiter
    weight: int


class Waiter:
    __slots__ = ("event", "message")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.message: Message | None = None


@dataclass(eq=False)
class Connection:
    stream: trio.abc.Stream
    decoder: FrameDecoder
    channel: SecureChannel
    remote: Remote
    initiator: bool
    label: str
    outbox_send: trio.MemorySendChannel[Outgoing]
    outbox_receive: trio.MemoryReceiveChannel[Outgoing]
    # Shared by all connections: what they hold together.
    budget: ByteBudget
    pending: dict[int, Waiter] = field(default_factory=dict)
    closed: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    # Bytes of replies made but not yet written, queued or waiting to queue.
    owed: int = 0
    # Carried by a relay (rate-limited, one more hop): a direct one is better.
    relayed: bool = False

    def __post_init__(self) -> None:
        self._ids = itertools.count(0 if self.initiator else 1, 2)
        self.budget.take(self.decoder.buffered)  # what came in right after the handshake

    def next_request_id(self) -> int:
        return next(self._ids) % (REQUEST_ID_MAX + 1)

    def is_reply(self, request_id: int) -> bool:
        return request_id % 2 == (0 if self.initiator else 1)

    def received(self) -> int:
        """Every byte that came from the far end so far, read or waiting to be."""
        return self.decoder.received + unread(self.stream)

    def owe(self, size: int) -> None:
        """A reply of `size` bytes was made for the far end."""
        self.owed += size
        self.budget.take(size)

    def paid(self, size: int) -> None:
        """`size` bytes of replies left (written or dropped): reading may resume."""
        size = min(size, self.owed)
        self.owed -= size
        self.budget.give(size)

    async def wait_for_room(self, budget: int, patience: float) -> None:
        """Return once the owed replies fit this connection's budget, and while the
        shared budget is spent, once they are sent; a remote that reads none of them
        for `patience` seconds loses the connection (`WireError`)."""
        while self.owed > budget or (self.owed and self.budget.over):
            with trio.move_on_after(patience):
                await self.budget.freed()
                continue
            raise WireError(f"{self.owed} bytes of replies left unread for {patience:g}s")

    def close(self) -> None:
        """Cancel the connection's tasks and drop what it buffered, both ways."""
        self.closed = True
        self.scope.cancel()
        for waiter in self.pending.values():
            waiter.event.set()  # with no message: the caller sees the peer as unreachable
        while True:
            try:
                self.outbox_receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        self.paid(self.owed)
        self.budget.give(self.decoder.buffered)
        self.decoder = FrameDecoder(0)


def received_over(connections: Iterable[Connection], node_id: bytes) -> int:
    """The bytes come so far over the open connections with `node_id` (0 with none open:
    a dial's handshake brings the first). That count still growing tells a holder that
    sends slowly from one that hangs."""
    return sum(c.received() for c in connections if c.remote.node_id == node_id and not c.closed)


def usable(conn: Connection | None, expected: bytes | None) -> bool:
    """An open connection to `expected` (to anyone, when None)."""
    if conn is None or conn.closed:
        return False
    return expected is None or conn.remote.node_id == expected
