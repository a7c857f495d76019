"""A relay: it keeps reservations for peers nobody can dial and splices sessions to them.

The reserved peer's own connection carries the relay's `RelayIncoming`; the
session is two fresh connections, one from each end, paired by a token and
spliced byte for byte (decision 0040). The relay never reads what it
carries: the ends run the authenticated, encrypted handshake between
themselves over it, so all the relay can see is sizes and timing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.errors import P2PBackupError
from p2pbackup.net.contact import Contact
from p2pbackup.net.limits import RateLimit
from p2pbackup.net.relay_book import ByteRate, RelayBook, RelayLimits, RelayRefused
from p2pbackup.net.relay_session import split_opening
from p2pbackup.net.relay_splice import Splice, Tap
from p2pbackup.net.relay_wire import (
    RelayAccepted,
    RelayConnect,
    RelayIncoming,
    RelayReserve,
    RelayReserved,
    RelaySession,
)
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote, Transport
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.net.relay")

# Who may use a relay: members of the mesh, or anyone in an open mesh; not joiners.
ADMITTED = frozenset({"member", "open"})


@dataclass(eq=False)
class _Rendezvous:
    """The first end of a session, waiting for the second."""

    stream: trio.SocketStream
    extra: bytes
    done: trio.Event = field(default_factory=trio.Event)
    taken: bool = False


class RelayServer:
    """Answers `RelayReserve` and `RelayConnect` and serves the sessions they open."""

    def __init__(
        self,
        transport: Transport,
        limits: RelayLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_timeout: float = 5.0,
        tap: Tap | None = None,
    ) -> None:
        """`tap`, for tests, sees (and may change or drop) every chunk spliced."""
        self.transport = transport
        self.limits = limits = limits or RelayLimits()
        self.book = RelayBook(limits, clock)
        self.call_timeout = call_timeout
        self.tap = tap
        self._holders: dict[bytes, Remote] = {}
        self._waiting: dict[bytes, _Rendezvous] = {}
        self._rates: dict[bytes, ByteRate] = {}
        self._total = ByteRate(limits.total_rate)
        # One line a minute for sessions with a bad token, not one each in a flood.
        self._refusals = RateLimit(1 / 60, 1, clock)
        self.carried = 0  # bytes spliced, both ways, over all sessions

    def attach(self) -> None:
        """Take the sessions the TCP transport's listener recognises (the simulator
        delivers relayed requests itself: `SimNetwork.carry`)."""
        assert isinstance(self.transport, TcpTransport)
        self.transport.relay_sessions = self.accept_session

    @property
    def waiting(self) -> int:
        """First ends held while they wait for the second."""
        return len(self._waiting)

    async def handle(self, remote: Remote, message: Message) -> Message:
        if remote.standing not in ADMITTED:
            raise RelayRefused("only members of the mesh may use this relay")
        if isinstance(message, RelayReserve):
            ttl = self.book.reserve(remote.node_id)
            if remote.node_id not in self._holders:
                log.info("relay: reservation for %s", remote.node_id.hex()[:12])
                for lapsed in self._holders.keys() - self.book.reservations.keys():
                    del self._holders[lapsed]
            self._holders[remote.node_id] = remote
            return RelayReserved(ttl)
        if isinstance(message, RelayConnect):
            return await self._connect(remote, message)
        raise P2PBackupError(f"{message.TYPE} is not a relay request")

    async def _connect(self, source: Remote, asked: RelayConnect) -> Message:
        target = asked.target
        token = self.book.connect(source.node_id, target)
        holder = self._holders.get(target)
        listen = holder.listen if holder is not None and holder.listen else ("0.0.0.0", 1)
        try:
            # Over the holder's own connection: it is what the reservation keeps open.
            # With none open, no dial reaches a peer that needs a relay: refused at once,
            # and the source tries its next relay instead of waiting out a timeout.
            if isinstance(self.transport, TcpTransport) and not self.transport.connected_to(target):
                raise P2PBackupError("its connection to this relay is closed")
            reply = await self.transport.request(
                Contact(target, *listen),
                RelayIncoming(token, source.node_id, asked.punch),
                self.call_timeout,
            )
        except P2PBackupError as exc:
            self.book.cancel(token)
            self.book.release(target)
            self._holders.pop(target, None)
            log.info("relay: dropping %s's reservation: %s", target.hex()[:12], exc)
            raise RelayRefused(
                f"{target.hex()[:12]} cannot be reached through this relay"
            ) from None
        answer = reply.message
        return RelaySession(token, answer.punch if isinstance(answer, RelayAccepted) else None)

    async def accept_session(self, stream: trio.SocketStream, first: bytes, label: str) -> None:
        """One end of a session came: hold it for the other, or splice the two."""
        token, extra = split_opening(first)
        pending = self.book.claim(token)
        first_end = self._waiting.get(token)
        if pending is None:
            level = logging.WARNING if self._refusals.allow("token") else logging.DEBUG
            log.log(level, "relay: closing session from %s: unknown or expired token", label)
            await trio.aclose_forcefully(stream)
            return
        if first_end is None:
            await self._wait_for_other(token, _Rendezvous(stream, extra), pending.expires)
            return
        first_end.taken = True
        del self._waiting[token]
        self.book.started(token)
        try:
            await self._splice(pending.target, first_end, stream, extra)
        finally:
            self.book.ended(pending.target)
            first_end.done.set()

    async def _wait_for_other(self, token: bytes, end: _Rendezvous, expires: float) -> None:
        """Hold the first end until the second takes it (then until their splice ends),
        or until the token expires."""
        self._waiting[token] = end
        try:
            with trio.move_on_after(max(0.0, expires - self.book.clock())):
                await end.done.wait()
            if end.taken:
                await end.done.wait()
                return
            log.info("relay: the other end of a session never came within its token's time")
            self.book.cancel(token)
        finally:
            if not end.taken:
                self._waiting.pop(token, None)
                await trio.aclose_forcefully(end.stream)

    def _count(self, size: int) -> None:
        self.carried += size

    async def _splice(
        self, target: bytes, first: _Rendezvous, second: trio.SocketStream, extra: bytes
    ) -> None:
        rate = self._rates.get(target)
        if rate is None:
            rate = self._rates[target] = ByteRate(self.limits.rate)
        splice = Splice(
            (first.stream, first.extra),
            (second, extra),
            (rate, self._total),
            self.limits.idle_timeout,
            self.tap,
            self._count,
        )
        try:
            await splice.run()
        finally:
            if self.book.active.get(target, 0) <= 1:  # the last one: the budget goes too
                self._rates.pop(target, None)
            log.debug("relay: session to %s ended: %s", target.hex()[:12], splice.ending)
