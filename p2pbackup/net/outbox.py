"""Which queued frame a connection's writer sends next.

Kept apart from the transport because it is the one decision about the
order on the wire, and it can be tested on a memory channel alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sized
from typing import Generic, TypeVar

import trio

SEND_APART = 64 * 1024  # frames at least this big are big: small ones may pass them
HELD_BIG = 2  # big frames the writer may hold back, besides the next, for small ones

Frame = TypeVar("Frame", bound=Sized)


class SmallFirst(Generic[Frame]):
    """An outbox's frames, each small one ahead of the big ones queued before it.

    A backup queues shares of several packs on each connection, and the DHT
    lookup for its next pack asks the same peers: in order, each small request
    waited behind megabytes of shares. Frames are sealed as they are sent, so
    sending them out of order is safe; at most `HELD_BIG` + 1 big frames wait
    here besides those in the outbox, so memory stays bounded."""

    def __init__(self, outbox: trio.MemoryReceiveChannel[Frame]) -> None:
        self._outbox = outbox
        self._small: deque[Frame] = deque()
        self._big: deque[Frame] = deque()
        self._open = True

    async def next(self) -> Frame | None:
        """The next frame to send, or None once the outbox is closed and empty."""
        if not self._small and not self._big:
            if not self._open:
                return None
            try:
                self._hold(await self._outbox.receive())
            except trio.EndOfChannel:
                return None
        while self._open and len(self._big) <= HELD_BIG:
            try:
                self._hold(self._outbox.receive_nowait())
            except trio.WouldBlock:
                break
            except trio.EndOfChannel:
                self._open = False
        return self._small.popleft() if self._small else self._big.popleft()

    def _hold(self, frame: Frame) -> None:
        (self._small if len(frame) < SEND_APART else self._big).append(frame)
