"""How a connection's writer puts frames on the wire: a frame below `JOIN_BELOW` (a
proof's 64 KiB block, every small request) goes out in one send with its prefix; a
share goes out as its prefix, then its sealed bytes themselves, never copied again."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import trio

from p2pbackup.net.connection import Connection, Outgoing
from p2pbackup.net.connection_loop import JOIN_BELOW, ConnectionLoop
from p2pbackup.net.handshake import ABYTES
from p2pbackup.net.limits import ByteBudget, RateLimit
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.transport import Remote
from p2pbackup.wire.frames import FrameDecoder, encode_frame, frame_prefix


@dataclass
class Recorded:
    """A stream that keeps what each `send_all` was given."""

    sends: list[Any] = field(default_factory=list)

    async def send_all(self, data: Any) -> None:
        self.sends.append(data)


class Clear:
    """A channel that seals nothing, so the test can see the frames."""

    def seal(self, payload: bytes) -> bytes:
        return payload


async def test_a_proofs_reply_goes_out_in_one_send_and_a_share_uncopied() -> None:
    options = TcpOptions()
    budget = ByteBudget(64 * 1024 * 1024)
    loop = ConnectionLoop(options, budget, RateLimit(100, 100, trio.current_time), lambda: None)
    send, receive = trio.open_memory_channel[Outgoing](8)
    stream = Recorded()
    conn = Connection(
        stream,  # type: ignore[arg-type]
        FrameDecoder(options.max_frame),
        Clear(),  # type: ignore[arg-type]
        Remote(os.urandom(32), os.urandom(32), None),
        True,
        "test",
        send,
        receive,
        budget,
    )
    reply = os.urandom(64 * 1024 + 300)
    share = os.urandom(2 * 1024 * 1024)
    assert len(reply) < JOIN_BELOW <= len(share)
    for payload in (reply, share):
        send.send_nowait(Outgoing(payload, reply=False))
    send.close()
    await loop._write_loop(conn)
    limit = options.max_frame + ABYTES
    assert stream.sends[0] == encode_frame(reply, limit)
    assert stream.sends[1:] == [frame_prefix(len(share), limit), share]
    assert stream.sends[2] is share
