"""TCP hole punching: a direct connection between two peers behind NATs, tried from
both sides at once and coordinated through the relay that joins them (decision 0040).

Each side holds a fresh local port for the try and tells the other, through
the relay, the address it expects to be seen at from outside: its public
host (as others observed it) and that port, which a port-preserving NAT
keeps. Then both send SYNs from that port to the other's address for a short
window, a new socket each attempt (one refused attempt ends its socket). The
first SYN out opens a side's own NAT for the other's; when the two cross, it
is a TCP simultaneous open, and the reserved side also listens on its port
for a SYN that arrives after its own. Both sockets of a pair carry one TCP
connection, so each side ends with the same stream or none. The caller
runs the usual handshake over it, so a wrong peer at that address is caught;
if no stream comes, the relayed session is used.

What a side is told to dial is bounded: a few addresses from a member's
relayed request, a few SYNs each, only inside the window.
"""

from __future__ import annotations

import errno
import logging
import socket

import trio

from p2pbackup.net.contact import format_address, parse_address
from p2pbackup.net.relay_wire import MAX_PUNCH_ADDRESSES
from p2pbackup.net.transport import Address

log = logging.getLogger("p2pbackup.net.hole_punch")

# How long the dialling side tries; the answering side tries a little longer, so it
# still answers when the dialler's last SYN arrives, and then goes to the relay.
DIAL_WINDOW = 2.0
ANSWER_WINDOW = 3.0
# How long one SYN waits for an answer before the next attempt, and the pause after
# an attempt refused at once (a NAT answering RST), so refusals do not spin.
ATTEMPT = 0.5
REFUSED_PAUSE = 0.05


def offers(hosts: list[str], port: int) -> tuple[str, ...]:
    """The addresses to tell the other side: each distinct host with the punch port."""
    distinct = list(dict.fromkeys(h for h in hosts if h and h not in ("0.0.0.0", "::")))
    return tuple(format_address((host, port)) for host in distinct[:MAX_PUNCH_ADDRESSES])


def targets(texts: tuple[str, ...] | None) -> list[Address]:
    """The other side's offers that are well-formed addresses (at most a few)."""
    found: list[Address] = []
    for text in (texts or ())[:MAX_PUNCH_ADDRESSES]:
        try:
            host, port = parse_address(text)
        except ValueError:
            continue
        if host not in ("0.0.0.0", "::"):
            found.append((host, port))
    return found


def _reusable(host: str) -> trio.socket.SocketType:
    """A TCP socket that may share its port with the other sockets of one punch."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class PunchPort:
    """One local port held for one punch, with a listener on it for the answering side."""

    def __init__(self, host: str, *, listen: bool) -> None:
        self.host = host
        self.listen = listen
        self._holder = _reusable(host)
        self.port = 0

    async def open(self) -> None:
        await self._holder.bind((self.host, 0))
        self.port = int(self._holder.getsockname()[1])
        if self.listen:
            self._holder.listen(4)

    def close(self) -> None:
        self._holder.close()

    async def run(self, to: list[Address], window: float) -> trio.SocketStream | None:
        """Try for `window` seconds; the stream that formed first, or None."""
        found: list[trio.SocketStream] = []
        with trio.move_on_after(window):
            async with trio.open_nursery() as nursery:
                for target in to:
                    nursery.start_soon(self._dial, target, found, nursery.cancel_scope)
                if self.listen:
                    nursery.start_soon(self._accept, found, nursery.cancel_scope)
        for extra in found[1:]:  # two at once: the first wins, the same on both sides
            await trio.aclose_forcefully(extra)
        return found[0] if found else None

    async def _dial(
        self, target: Address, found: list[trio.SocketStream], done: trio.CancelScope
    ) -> None:
        while True:
            sock = _reusable(self.host)
            try:
                await sock.bind((self.host, self.port))
                with trio.move_on_after(ATTEMPT):
                    await sock.connect(target)
                    found.append(trio.SocketStream(sock))
                    done.cancel()
                    return
            except OSError as exc:
                log.debug("punch to %s: %s", format_address(target), exc.strerror or exc)
                sock.close()
                if exc.errno not in (errno.ECONNREFUSED, errno.ECONNRESET, errno.EADDRNOTAVAIL):
                    await trio.sleep(ATTEMPT)  # a host unreachable: no point hammering it
                await trio.sleep(REFUSED_PAUSE)
                continue
            sock.close()

    async def _accept(self, found: list[trio.SocketStream], done: trio.CancelScope) -> None:
        sock, _ = await self._holder.accept()
        found.append(trio.SocketStream(sock))
        done.cancel()
