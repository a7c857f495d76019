"""The opening of a relayed session on the wire: both of its ends and the relay's side.

A relayed session is a fresh TCP connection to the relay that starts with
`SESSION_MAGIC` and a token instead of a handshake. The relay answers one
status byte once both ends came with the same token (or closes), and then
carries bytes unread; the two ends run their own handshake over them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from p2pbackup.errors import HandshakeError, PeerUnreachable
from p2pbackup.net.framing import Closed
from p2pbackup.net.relay_wire import PAIRED, SESSION_MAGIC, SESSION_OPENING
from p2pbackup.net.transport import Address

log = logging.getLogger("p2pbackup.net.relay")

# Given an accepted stream, what was read of it, and a label for the log.
RelaySessions = Callable[[trio.SocketStream, bytes, str], Awaitable[None]]

__all__ = ["SESSION_MAGIC", "RelaySessions", "first_bytes", "open_session", "refuse_session"]


async def first_bytes(stream: trio.abc.ReceiveStream, timeout: float, most: int) -> bytes:
    """What a new connection sends first (at most `most` bytes): enough to tell a relayed
    session from a handshake, which goes on from these bytes; of a session, its whole
    opening, so it is read while the connection still counts as a stranger's."""
    first = b""
    with trio.move_on_after(timeout):
        while len(first) < len(SESSION_MAGIC) or (
            first.startswith(SESSION_MAGIC) and len(first) < SESSION_OPENING
        ):
            data = await stream.receive_some(most - len(first))
            if not data:
                raise Closed
            first += data
        return first
    raise HandshakeError(f"no handshake within {timeout:g}s")


async def refuse_session(stream: trio.SocketStream, first: bytes, label: str) -> None:
    """What a peer that relays nothing does with a relayed session: close it."""
    log.warning("closing connection from %s: a relayed session, and this peer is no relay", label)
    await trio.aclose_forcefully(stream)


def split_opening(first: bytes) -> tuple[bytes, bytes]:
    """The token of a session's opening (as `first_bytes` read it) and what followed."""
    return first[len(SESSION_MAGIC) : SESSION_OPENING], first[SESSION_OPENING:]


async def open_session(relay: Address, token: bytes, timeout: float) -> trio.SocketStream:
    """Connect to `relay` with `token` and wait until it paired us with the other end;
    raises `PeerUnreachable` with the reason when it does not."""
    where = f"relay {relay[0]}:{relay[1]}"
    try:
        stream = await trio.open_tcp_stream(*relay)
    except OSError as exc:
        raise PeerUnreachable(f"{where}: {exc.strerror or exc}") from None
    try:
        with trio.fail_after(timeout):
            await stream.send_all(SESSION_MAGIC + token)
            status = await stream.receive_some(1)
    except trio.TooSlowError:
        await trio.aclose_forcefully(stream)
        raise PeerUnreachable(f"{where} did not pair the session within {timeout:g}s") from None
    except (trio.BrokenResourceError, OSError):
        status = b""
    if status != PAIRED:
        await trio.aclose_forcefully(stream)
        raise PeerUnreachable(f"{where} refused the session (unknown or expired token)")
    return stream
