"""Which connections a TCP peer takes on: accepted, dialled, or turned away.

Every connection costs a descriptor and may hold a frame, so how many there
are, how many strangers sit in their handshake, and how often one address is
dialled are capped here, in one place the transport asks before each. The
caps stay below the descriptor limit: when accept() fails for want of
descriptors anyway, the loop pauses and goes on, and never takes the peer down.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable

import trio

from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.limits import RateLimit, connection_caps, descriptor_limit
from p2pbackup.net.transport import Address
from p2pbackup.wire.frames import FrameDecoder

log = logging.getLogger("p2pbackup.net.tcp")

# accept() failing for want of descriptors or buffers: wait, then accept again.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Admission:
    """The transport's count of open connections and the caps it keeps them under."""

    def __init__(
        self,
        max_connections: int | None,
        max_unauthenticated: int | None,
        dials: RateLimit,
        accept_pause: float,
    ) -> None:
        total, strangers = connection_caps(descriptor_limit())
        self.max_connections = max_connections or total
        self.max_unauthenticated = max_unauthenticated or strangers
        self.sockets = 0  # open TCP streams, both ways
        # Accepted connections not yet through their handshake, counted from the
        # accept itself so a burst of accepts cannot pass the cap before any starts.
        self.strangers = 0
        # The frame buffers of connections still in their handshake.
        self.handshaking: set[FrameDecoder] = set()
        self.dials = dials
        self.accept_pause = accept_pause
        self._turning_away = False

    async def accept_loop(
        self, listener: trio.SocketListener, take: Callable[[trio.SocketStream], None]
    ) -> None:
        """Accept until cancelled, handing each admitted stream (counted) to `take`."""
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.warning(
                        "cannot accept connections (%s); trying again in %gs",
                        os.strerror(exc.errno or 0),
                        self.accept_pause,
                    )
                    await trio.sleep(self.accept_pause)
                    continue
                if self._over_cap(stream):
                    await trio.aclose_forcefully(stream)
                    continue
                self.sockets += 1
                self.strangers += 1
                take(stream)

    def _over_cap(self, stream: trio.SocketStream) -> bool:
        """Whether a new connection must be turned away; logged once per run of them."""
        full = self.sockets >= self.max_connections
        if not full and self.strangers < self.max_unauthenticated:
            self._turning_away = False
            return False
        if not self._turning_away:
            self._turning_away = True
            log.warning(
                "turning away connections (first from %s): %d open of %d, %d in handshake of %d",
                peer_label(stream),
                self.sockets,
                self.max_connections,
                self.strangers,
                self.max_unauthenticated,
            )
        return True

    def check_dial(self, address: Address) -> None:
        """Raise `PeerUnreachable` if dialling `address` now would break a cap."""
        where = f"{address[0]}:{address[1]}"
        if self.sockets >= self.max_connections:
            raise PeerUnreachable(f"{where}: {self.sockets} connections open, none dialled")
        if not self.dials.allow(address):
            if self.dials.first_refusal(address):
                log.warning("not dialling %s: dialled too often in the last minute", where)
            raise PeerUnreachable(f"{where}: dialled too often, not dialled again yet")


def peer_label(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "an unknown address"
    return f"{host}:{port}"


def peer_address(stream: trio.SocketStream) -> tuple[str, int] | None:
    """Where the far end of an accepted connection is (what a NAT's public side shows)."""
    try:
        name = stream.socket.getpeername()
    except OSError:
        return None
    return (str(name[0]), int(name[1]))
