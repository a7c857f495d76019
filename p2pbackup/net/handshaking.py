"""Running the handshake of `handshake.py` over a stream, within its time and size bounds.

Shared by the transport's connections and by dial-back probes, which need a
proven identity over a socket of their own and nothing after it.
"""

from __future__ import annotations

from collections.abc import MutableSet

import trio

from p2pbackup.errors import HandshakeError
from p2pbackup.net.framing import receive_frame
from p2pbackup.net.handshake import MAX_HANDSHAKE_FRAME, Established, Handshake
from p2pbackup.net.options import TcpOptions
from p2pbackup.wire.frames import PREFIX, FrameDecoder, encode_frame

HANDSHAKE_READ = PREFIX.size + MAX_HANDSHAKE_FRAME


async def shake_hands(
    stream: trio.abc.Stream,
    handshake: Handshake,
    decoder: FrameDecoder,
    options: TcpOptions,
    handshaking: MutableSet[FrameDecoder] | None = None,
) -> Established:
    """The whole handshake within `handshake_timeout`, reading no further than its frames;
    `handshaking` holds the decoder meanwhile (what strangers make this peer hold)."""
    limit = options.handshake_timeout

    async def receive() -> bytes:
        return await receive_frame(
            stream, decoder, options.frame_timeout, options.idle_timeout, most=HANDSHAKE_READ
        )

    if handshaking is not None:
        handshaking.add(decoder)
    try:
        with trio.fail_after(limit):
            await stream.send_all(encode_frame(handshake.hello(), MAX_HANDSHAKE_FRAME))
            proof = handshake.receive_hello(await receive())
            await stream.send_all(encode_frame(proof, MAX_HANDSHAKE_FRAME))
            return handshake.receive_auth(await receive())
    except trio.TooSlowError:
        raise HandshakeError(f"no handshake within {limit:g}s") from None
    finally:
        if handshaking is not None:
            handshaking.discard(decoder)
