"""A dial-back probe: does `node_id` answer a fresh TCP connection at this address?

A reachability check must not reuse a connection: one the asker opened to us,
or one we opened through a relay and keep under its main address, would say
yes for an address nobody can dial. The probe opens its own socket to the
very address, runs the whole authenticated handshake expecting the asker's id
(a completed handshake is the answer, no request is needed) and closes it.
It counts against the transport's per-address dial budget like any dial, so
probes cannot be used to dial one address more often than anything else.
"""

from __future__ import annotations

import trio

from p2pbackup.errors import HandshakeError, PeerUnreachable, WireError
from p2pbackup.net.contact import format_address
from p2pbackup.net.framing import Closed
from p2pbackup.net.handshake import MAX_HANDSHAKE_FRAME
from p2pbackup.net.handshaking import shake_hands
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address
from p2pbackup.wire.frames import FrameDecoder


class NotDialled(PeerUnreachable):
    """The probe was not made (the address was dialled too often lately): this says
    nothing about whether the address can be reached."""


async def probe(transport: TcpTransport, address: Address, node_id: bytes, timeout: float) -> None:
    """Return once `node_id` proved itself at `address`; raise `PeerUnreachable` if not,
    `NotDialled` if the transport's bounds did not let it try."""
    where = format_address(address)
    try:
        transport.admission.check_dial(address)
    except PeerUnreachable as exc:
        raise NotDialled(str(exc)) from None
    options = transport.options
    with trio.move_on_after(timeout) as scope:
        try:
            stream = await trio.open_tcp_stream(*address)
        except OSError:
            raise PeerUnreachable(f"{where}: cannot connect") from None
        transport.admission.sockets += 1
        try:
            handshake = transport.new_handshake(True, node_id, address)
            decoder = FrameDecoder(MAX_HANDSHAKE_FRAME)
            await shake_hands(stream, handshake, decoder, options)
        except (HandshakeError, WireError) as exc:
            raise PeerUnreachable(f"{where}: {exc}") from None
        except (OSError, trio.BrokenResourceError, Closed):
            raise PeerUnreachable(f"{where} closed the connection") from None
        finally:
            transport.admission.sockets -= 1
            await trio.aclose_forcefully(stream)
    if scope.cancelled_caught:
        raise PeerUnreachable(f"{where} did not answer within {timeout:g}s")
