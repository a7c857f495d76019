"""Bytes of packs in flight, counted so that memory does not grow with what is moved.

A restore holds each pack from its fetch until it is written, a backup each
pack (and its shares and their frames) until it is placed: both count those
bytes, not only the packs, because a big file's packs are bigger than others.
"""

from __future__ import annotations

import trio


class Budget:
    """Bytes of packs in flight, taken in the order asked.

    By default a pack waits until the packs before it leave room for its whole
    size; with `while_room`, it goes as soon as those in flight are under the
    limit, so at most the limit plus one pack are in flight. Either way one pack
    is let through even when it alone is larger than the whole budget, so nothing
    waits forever."""

    def __init__(self, limit: int, *, while_room: bool = False) -> None:
        if limit < 1:
            raise ValueError("a memory budget must be at least one byte")
        self.limit = limit
        self.while_room = while_room
        self.used = 0
        self._freed = trio.Event()

    def _full(self, size: int) -> bool:
        if self.while_room:
            return self.used >= self.limit
        return self.used > 0 and self.used + size > self.limit

    async def take(self, size: int) -> None:
        while self._full(size):
            await self._freed.wait()
        self.used += size

    def give(self, size: int) -> None:
        self.used -= size
        self._freed.set()
        self._freed = trio.Event()
