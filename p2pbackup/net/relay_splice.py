"""Two sockets joined byte for byte, under rate budgets and an idle deadline.

The relay copies what one end sends to the other without looking at it;
each chunk waits as long as the strictest of its byte budgets asks, so a
relayed peer cannot take more than its share of the relay's uplink, nor all
relayed peers together more than the relay offers. A session quiet both
ways for the idle deadline is closed, and so is the whole session when
either end closes or fails.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from p2pbackup.net.relay_book import ByteRate
from p2pbackup.net.relay_wire import PAIRED

CHUNK = 64 * 1024
# Sees each chunk and which way it goes (True: from the first end); returns the
# bytes to pass on, or None to drop them. Only tests set one: a hostile relay.
Tap = Callable[[bytes, bool], bytes | None]
End = tuple[trio.SocketStream, bytes]  # a stream and what it sent before the splice


class Splice:
    def __init__(
        self,
        first: End,
        second: End,
        rates: tuple[ByteRate, ...],
        idle_timeout: float,
        tap: Tap | None = None,
        count: Callable[[int], None] = lambda size: None,
    ) -> None:
        """`count` hears the size of every chunk passed on."""
        self.first, self.second = first, second
        self.count = count
        self.rates = rates
        self.idle_timeout = idle_timeout
        self.tap = tap
        self.ending = "cancelled"
        self._last = trio.current_time()

    async def run(self) -> None:
        """Pair the ends, copy both ways until one ends; both streams are closed after."""
        (a, a_extra), (b, b_extra) = self.first, self.second
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_idle, nursery.cancel_scope)
                nursery.start_soon(self._pump, a, b, PAIRED + b_extra, False, nursery.cancel_scope)
                nursery.start_soon(self._pump, b, a, PAIRED + a_extra, True, nursery.cancel_scope)
        finally:
            await trio.aclose_forcefully(a)
            await trio.aclose_forcefully(b)

    async def _pump(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        opening: bytes,
        from_first: bool,
        scope: trio.CancelScope,
    ) -> None:
        """Copy `source` to `sink` (after `opening`: the status byte and any early bytes)."""
        try:
            await sink.send_all(opening)
            while True:
                data = await source.receive_some(CHUNK)
                if not data:
                    self.ending = "an end closed"
                    break
                self._last = trio.current_time()
                passed = data if self.tap is None else self.tap(bytes(data), from_first)
                if passed is None:
                    continue
                await self._pace(len(passed))
                await sink.send_all(passed)
                self.count(len(passed))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.ending = f"an end failed: {exc}"
        scope.cancel()

    async def _pace(self, size: int) -> None:
        now = trio.current_time()
        delay = max(rate.delay(size, now) for rate in self.rates)
        if delay > 0:
            await trio.sleep(delay)

    async def _watch_idle(self, scope: trio.CancelScope) -> None:
        while True:
            left = self._last + self.idle_timeout - trio.current_time()
            if left <= 0:
                self.ending = f"idle for {self.idle_timeout:g}s"
                scope.cancel()
                return
            await trio.sleep(left)
