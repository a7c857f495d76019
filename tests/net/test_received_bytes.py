"""The count of bytes come from a peer, which tells a holder that sends slowly from one
that hangs: it grows with every byte that arrives, read yet or not, and stands still
while the peer sends nothing."""

from __future__ import annotations

import contextlib

import trio
import trio.testing

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import FindNode, Ping
from p2pbackup.errors import PeerUnreachable
from p2pbackup.net.framing import unread
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.transport import Remote
from p2pbackup.wire.messages import Message
from tests.net.bounds_support import contact_of, pong, serving

OPTIONS = TcpOptions(handshake_timeout=2.0, frame_timeout=2.0)


async def test_bytes_arrived_but_not_read_are_counted() -> None:
    """A big frame's reader sleeps until all of it is in: what came meanwhile is only in
    the socket."""
    left, right = trio.socket.socketpair()
    with left, right:
        stream = trio.SocketStream(right)
        assert unread(stream) == 0
        await left.send(b"x" * 10_000)
        assert unread(stream) == 10_000
        await stream.receive_some(4_000)
        assert unread(stream) == 6_000
    assert unread(trio.testing.MemoryReceiveStream()) == 0  # not a socket: nothing to ask


async def test_the_count_stands_still_while_a_peer_hangs_and_grows_when_it_answers(
    nursery: trio.Nursery,
) -> None:
    async def hang_on_ping(remote: Remote, message: Message) -> Message:
        if isinstance(message, Ping):
            await trio.sleep_forever()
        return await pong(remote, message)

    async with (
        serving(nursery, OPTIONS, hang_on_ping) as holder,
        serving(nursery, OPTIONS) as owner,
    ):
        node = holder.identity.node_id
        assert owner.received_from(node) == 0  # no connection yet
        await owner.request(contact_of(holder), FindNode(b"\0" * 20), timeout=5)
        answered = owner.received_from(node)
        assert answered > 0

        async def hung_request() -> None:
            with contextlib.suppress(PeerUnreachable):
                await owner.request(contact_of(holder), Ping(), timeout=1.0)

        nursery.start_soon(hung_request)
        await trio.sleep(0.5)
        assert owner.received_from(node) == answered  # asked, and not a byte since
        await owner.request(contact_of(holder), FindNode(b"\0" * 20), timeout=5)
        assert owner.received_from(node) > answered
        assert owner.received_from(Identity.generate().node_id) == 0
