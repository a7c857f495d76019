"""How many bytes of shares an owner has on their way at once over its one link.

Every put an owner has in flight shares its uplink. At home that link carries a
few megabits a second; the ten shares of each of four packs going out at once
(80 MiB for a big file) then each took over a minute, past the stall interval of
a put and the 30 s a frame may take, and every put failed: a backup of 20 MB over
8 Mbit/s failed with "6 did not answer" (decision 0097). The owner's puts, its
`repair` and its re-encoding share one window (`MeshPackStore.send_gate`).

The window lets out only as many bytes as come back in good time. It grows by
each share that did, as TCP's slow start does, so on loopback or a LAN it opens
to `most` within the first few round trips; it shrinks by a third, at most once
per `aim`, after a share that took longer or stalled. One transfer may always go
when none is out, so a share bigger than the window still goes.

Good time is `aim` seconds, or twice what the share's bytes take at the fastest
of the last shares, whichever is longer, but never past `longest`. On a full link
more shares at once make each slower, and the window closes; on a lossy path
each connection is held back by its own losses, not by the others, a share takes
as long with nine out as with one, and the window stays open. A 10 MiB backup
over a path of 40 ms each way losing 1% (TCP Reno): 130 s with `aim` alone, 69
and 93 s so. Shares slowed by each other could teach the window that slow is
normal; `longest` stops that.

It also measures the link: bytes that came back per second while any transfer was
out. A transfer's stall interval, learnt from how long transfers took lately,
gets on top the time the bytes out with it need at that rate, as that rate stands
at each look: a 2 MiB share alone over 2 Mbit/s takes 8 s, and small puts before
it had set the interval to 5 s. Never more than those bytes take at the slowest
rate a peer waits for a frame at (`SLOWEST_RATE`), so a hung holder is still
passed over.

`TransferWindow` is plain arithmetic on the times its caller gives; `TransferGate`
is the trio side that makes transfers wait for room.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from p2pbackup.net.framing import SLOWEST_RATE

MIB = 1024 * 1024
# The shares that say how fast one goes: the last this many of at least
# `PACED_FROM` bytes (a small share's time is round trips, not bytes).
PACES_KEPT = 32
PACED_FROM = 64 * 1024
# Fewer shares than this say nothing of the others: a slow one closes the window.
MOST_SLOW_FROM = 4
# A transfer waiting for room looks again this often, besides whenever one ends.
LOOK_AGAIN_SECONDS = 0.5


@dataclass
class TransferWindow:
    """The bytes allowed out at once, and the bytes out now."""

    first: int = 3 * MIB
    least: int = 1 * MIB
    most: int = 256 * MIB
    # A share through within this long says the link has room for more.
    aim: float = 4.0
    # The rate is measured over about this many seconds of transfer.
    horizon: float = 30.0
    allowed: float = field(init=False)
    out: int = field(default=0, init=False)
    _shrunk_at: float = field(default=-math.inf, init=False)
    _through_bytes: float = field(default=0.0, init=False)
    _busy_seconds: float = field(default=0.0, init=False)
    _last: float | None = field(default=None, init=False)
    # However fast a share went, one that took longer says the link is full.
    longest: float = 15.0
    # Seconds per byte of the last shares that came through.
    _paces: deque[float] = field(default_factory=lambda: deque(maxlen=PACES_KEPT), init=False)

    def __post_init__(self) -> None:
        if not 0 < self.least <= self.first <= self.most or not 0 < self.aim <= self.longest:
            raise ValueError("need 0 < least <= first <= most and 0 < aim <= longest")
        self.allowed = float(self.first)

    def admits(self, size: int, counted: int | None = None) -> bool:
        """Whether `size` more bytes may go out, with `counted` bytes out that count (all
        of them unless told)."""
        out = self.out if counted is None else counted
        return out == 0 or out + size <= self.allowed

    def slow_alone(self, size: int, seconds: float) -> bool:
        """Whether a transfer of `size` bytes out for `seconds` is slow where the others
        are not: its holder's own link, not ours, holds it back, and it should not hold
        the window's room meanwhile."""
        in_time = self.in_time(size)
        return seconds > in_time and not self._most_slow(size, in_time)

    def let_out(self, size: int, now: float) -> int:
        """Count `size` bytes out; the bytes out now, these included."""
        self._tick(now)
        self.out += size
        return self.out

    def transfer_seconds(self, ahead: int) -> float:
        """How long `ahead` bytes take at the rate measured so far; at the slowest rate a
        frame may come at before any share came through, and never longer than that."""
        rate = self.rate()
        slowest = ahead / SLOWEST_RATE
        return slowest if rate is None else min(slowest, ahead / rate)

    def rate(self) -> float | None:
        """Bytes through per second of transfer, lately; None before any came through."""
        if self._through_bytes <= 0 or self._busy_seconds <= 0:
            return None
        return self._through_bytes / self._busy_seconds

    def came_back(self, size: int, seconds: float, through: bool, now: float) -> None:
        """A transfer of `size` bytes ended after `seconds`: `through` (its share came
        through), or not (stalled, failed).

        One that failed at once (a refusal, a closed port) says nothing about the
        link and leaves the window as it was."""
        self._tick(now)
        self.out = max(0, self.out - size)
        in_time = self.in_time(size)
        slow = seconds > in_time
        if through:
            self._through_bytes += size
        if size >= PACED_FROM and (through or slow):
            self._paces.append(seconds / size)
        if through and not slow:
            self.allowed = min(float(self.most), self.allowed + size)
        elif slow and self._most_slow(size, in_time) and now - self._shrunk_at >= self.aim:
            self._shrunk_at = now
            self.allowed = max(float(self.least), self.allowed * 2 / 3)

    def _most_slow(self, size: int, in_time: float) -> bool:
        """Whether shares of this size went slowly lately, not only this one: a holder
        behind a relay at 1 MiB/s, or on a slow link of its own, is slow alone, and
        closing the window for it held up every other share (a 24 MB backup with two
        of five holders relayed took 8.9 s instead of 0.3). Nor does such a share
        hold the window's room once it is late (`slow_alone`)."""
        if len(self._paces) < MOST_SLOW_FROM:
            return True
        return statistics.median(self._paces) * size > in_time / 2

    def in_time(self, size: int) -> float:
        """How long a share of `size` bytes may take and still say the link has room."""
        if not self._paces:
            return self.aim
        return min(self.longest, max(self.aim, 2 * min(self._paces) * size))

    def gave_up(self, size: int, now: float) -> None:
        """A transfer of `size` bytes was called off before it ended: it says nothing
        about the link."""
        self._tick(now)
        self.out = max(0, self.out - size)

    def _tick(self, now: float) -> None:
        """Count the time since the last event as transfer if anything was out; halve
        what was measured once it spans the horizon, so the rate follows the link."""
        if self._last is not None and self.out > 0:
            self._busy_seconds += max(0.0, now - self._last)
        self._last = now
        if self._busy_seconds > self.horizon:
            self._busy_seconds /= 2
            self._through_bytes /= 2


class TransferGate:
    """Transfers wait here until the window has room for their share."""

    def __init__(self, window: TransferWindow | None = None) -> None:
        self.window = window if window is not None else TransferWindow()
        self._room = trio.Event()
        self._live: list[TransferTicket] = []

    def admits(self, size: int) -> bool:
        """Whether a transfer of `size` bytes would go out now; transfers slow on their
        own do not count against the room (`TransferWindow.slow_alone`)."""
        now, window = trio.current_time(), self.window
        counted = sum(
            t.size
            for t in self._live
            if not t.given_up and not window.slow_alone(t.size, now - t.started)
        )
        return window.admits(size, counted)

    def give_up(self, ticket: TransferTicket) -> None:
        """A transfer still open that its caller no longer waits for (a fetch that
        stalled, from a holder that may hang): its room goes to the others."""
        ticket.given_up = True
        self._room.set()
        self._room = trio.Event()

    @asynccontextmanager
    async def slot(self, size: int) -> AsyncIterator[TransferTicket]:
        """Room for `size` bytes until the block ends; the block tells the ticket how
        the transfer went (an unset ticket counts as one that failed at once)."""
        while not self.admits(size):
            # Looked at again now and then: a transfer turning slow alone frees room.
            with trio.move_on_after(LOOK_AGAIN_SECONDS):
                await self._room.wait()
        now = trio.current_time()
        ticket = TransferTicket(self.window, size, now, self.window.let_out(size, now))
        self._live.append(ticket)
        try:
            yield ticket
        except BaseException:  # cancelled from outside (a pack complete without it)
            self.window.gave_up(size, trio.current_time())
            raise
        else:
            now = trio.current_time()
            self.window.came_back(size, now - ticket.started, ticket.through, now)
        finally:
            self._live.remove(ticket)
            self._room.set()
            self._room = trio.Event()


@dataclass(eq=False)
class TransferTicket:
    """One transfer let out: when, the bytes out with it (its own and those before it),
    and whether its share came through (set by the transfer)."""

    window: TransferWindow | None
    size: int
    started: float
    ahead: int = 0
    through: bool = False
    given_up: bool = False

    def transfer_seconds(self) -> float:
        """What the transfer's stall interval adds for its bytes, at the rate measured
        now: one let out before the first share came back is judged by what came after."""
        return 0.0 if self.window is None else self.window.transfer_seconds(self.ahead)


@asynccontextmanager
async def room(gate: TransferGate | None, size: int) -> AsyncIterator[TransferTicket]:
    """Room for `size` bytes in `gate`, or at once with a ticket no window counts when
    there is no gate."""
    if gate is None:
        yield TransferTicket(None, size, 0.0)
        return
    async with gate.slot(size) as ticket:
        yield ticket
