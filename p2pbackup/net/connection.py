"""One authenticated TCP connection's state: the calls awaiting replies on it,
and the bytes of replies it owes the far end.

The owed bytes are kept here because they are what a remote that never reads
its replies would make this peer hold: the reader stops taking requests while
they exceed a budget, and closing the connection drops them all at once.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import trio

from p2pbackup.errors import WireError
from p2pbackup.net.handshake import SecureChannel
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
    pending: dict[int, Waiter] = field(default_factory=dict)
    closed: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    # Bytes of replies made but not yet written, queued or waiting to queue.
    owed: int = 0
    _room: trio.Event = field(default_factory=trio.Event)

    def __post_init__(self) -> None:
        self._ids = itertools.count(0 if self.initiator else 1, 2)

    def next_request_id(self) -> int:
        return next(self._ids) % (REQUEST_ID_MAX + 1)

    def is_reply(self, request_id: int) -> bool:
        return request_id % 2 == (0 if self.initiator else 1)

    def paid(self, size: int) -> None:
        """`size` bytes of replies left (written or dropped): reading may resume."""
        self.owed = max(0, self.owed - size)
        self._room.set()

    async def wait_for_room(self, budget: int, patience: float) -> None:
        """Return once the owed replies fit the budget; a remote that reads none of
        them for `patience` seconds loses the connection (`WireError`)."""
        while self.owed > budget:
            self._room = trio.Event()
            with trio.move_on_after(patience):
                await self._room.wait()
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
        self.owed = 0
        self.decoder = FrameDecoder(0)
        self._room.set()
