"""A remote that asks for shares and never reads the replies stops being read
once its unsent replies pass the budget, and closing it frees them all."""

from __future__ import annotations

import trio
import trio.testing

from p2pbackup.dht.messages import Ping
from p2pbackup.net.handshake import SecureChannel
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import ShareData
from p2pbackup.wire.frames import encode_frame
from p2pbackup.wire.messages import Message, encode_message
from tests.net.bounds_support import authenticate, contact_of, raw_streams, serving

REPLY = 512 * 1024
BUDGET = 1024 * 1024
CONCURRENT = 4
REQUESTS = 200
OPTIONS = TcpOptions(
    max_frame=REPLY + 4096,
    reply_budget=BUDGET,
    max_concurrent_requests=CONCURRENT,
    request_burst=10 * REQUESTS,
)
# What the connection may owe at most: the budget, passed by the replies
# that were being made when it was reached.
BOUND = BUDGET + (CONCURRENT + 1) * (REPLY + 1024)


class ShareServer:
    """Answers every request with a share-sized reply, counting them."""

    def __init__(self) -> None:
        self.answered = 0

    async def __call__(self, remote: Remote, message: Message) -> Message:
        self.answered += 1
        return ShareData(index=0, descriptor=b"d", data=bytes(REPLY))


def _requests(channel: SecureChannel) -> bytes:
    # Request ids of an initiator are even.
    return b"".join(
        encode_frame(channel.seal(encode_message(2 * n, Ping())), 1 << 30) for n in range(REQUESTS)
    )


async def test_unread_replies_stop_the_reading_of_requests_and_are_freed_on_close(
    nursery: trio.Nursery,
) -> None:
    shares = ShareServer()
    async with serving(nursery, OPTIONS, shares) as server, serving(nursery, OPTIONS) as honest:
        async with raw_streams(1, server.listen) as (stream,):
            channel = await authenticate(stream)
            nursery.start_soon(stream.send_all, _requests(channel))
            await trio.testing.wait_all_tasks_blocked(cushion=0.5)
            held = server.held_bytes
            answered = shares.answered
            # Besides what the budget allows, only what the kernel buffers took.
            assert held <= BOUND, held
            assert answered < REQUESTS // 4, answered
            # Another peer is still answered meanwhile.
            honest_share = await honest.request(contact_of(server), Ping(), timeout=10)
            assert isinstance(honest_share.message, ShareData)
        await trio.testing.wait_all_tasks_blocked(cushion=0.5)
        assert server.held_bytes == 0
        assert server.connection_count == 1  # the honest peer's
