"""The TCP transport in one process: real sockets on 127.0.0.1, real handshakes."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

import cbor2
import pytest
import trio

import p2pbackup.dht.messages  # noqa: F401  (registers the DHT messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import FindNode, Ping, Pong
from p2pbackup.errors import PeerUnreachable, RemoteError
from p2pbackup.net.contact import Contact
from p2pbackup.net.handshake import ABYTES, Handshake, SecureChannel
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.outbox import SEND_APART, SmallFirst
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.wire.frames import FrameDecoder, encode_frame
from p2pbackup.wire.messages import Message, encode_message
from tests.net.bounds_support import Handler, contact_of, pong
from tests.net.bounds_support import serving as serving_with

OPTIONS = TcpOptions(max_frame=64 * 1024, handshake_timeout=1.0, frame_timeout=1.0)


def serving(
    nursery: trio.Nursery, handler: Handler = pong
) -> AbstractAsyncContextManager[TcpTransport]:
    return serving_with(nursery, OPTIONS, handler)


async def test_request_reply_with_proven_identity(nursery: trio.Nursery) -> None:
    async with serving(nursery) as server, serving(nursery) as client:
        reply = await client.request(contact_of(server), Ping(), timeout=5)
        assert isinstance(reply.message, Pong)
        assert reply.remote.node_id == server.identity.node_id
        assert reply.remote.listen == server.listen


async def test_one_connection_carries_many_requests_both_ways(nursery: trio.Nursery) -> None:
    async with serving(nursery) as a, serving(nursery) as b:
        async with trio.open_nursery() as burst:
            for _ in range(20):
                burst.start_soon(a.request, contact_of(b), Ping(), 5)
        # b answers a back over the connection a opened.
        await b.request(contact_of(a), Ping(), timeout=5)
        assert a.connection_count == 1
        assert b.connection_count == 1


async def test_a_different_peer_at_the_address_is_refused(nursery: trio.Nursery) -> None:
    async with serving(nursery) as server, serving(nursery) as client:
        impostor = Contact(Identity.generate().node_id, *server.listen)
        with pytest.raises(PeerUnreachable, match="expected peer"):
            await client.request(impostor, Ping(), timeout=5)
        assert isinstance((await client.request(contact_of(server), Ping(), 5)).message, Pong)


async def test_a_silent_handler_times_out_and_an_error_is_raised_as_remote(
    nursery: trio.Nursery,
) -> None:
    async def slow(remote: Remote, message: Message) -> Message:
        if isinstance(message, FindNode):
            raise RemoteError("not here")
        await trio.sleep_forever()
        raise AssertionError

    async with serving(nursery, slow) as server, serving(nursery) as client:
        with trio.fail_after(3):
            with pytest.raises(PeerUnreachable, match="did not answer"):
                await client.request(contact_of(server), Ping(), timeout=0.3)
        with pytest.raises(RemoteError, match="not here"):
            await client.request(contact_of(server), FindNode(b"\0" * 20), timeout=5)


async def test_a_closed_port_is_unreachable(nursery: trio.Nursery) -> None:
    async with serving(nursery) as client:
        probe = trio.socket.socket()
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        with pytest.raises(PeerUnreachable):
            await client.request(("127.0.0.1", port), Ping(), timeout=5)


# ---- bad input: each closes that connection and the peer serves on --------


async def _read_until_closed(stream: trio.SocketStream, limit: float = 5) -> bool:
    """True when the far end closed the stream within `limit` seconds."""
    with trio.move_on_after(limit):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass
        return True
    return False


async def _authenticated(
    server: TcpTransport, identity: Identity | None = None
) -> tuple[trio.SocketStream, SecureChannel]:
    stream = await trio.open_tcp_stream(*server.listen)
    handshake = Handshake(identity or Identity.generate(), initiator=True, listen=None)
    decoder = FrameDecoder(1024)
    await stream.send_all(encode_frame(handshake.hello()))
    proof = handshake.receive_hello(await _frame(stream, decoder))
    await stream.send_all(encode_frame(proof))
    established = handshake.receive_auth(await _frame(stream, decoder))
    return stream, established.channel


async def _frame(stream: trio.SocketStream, decoder: FrameDecoder) -> bytes:
    while (frame := decoder.next_frame()) is None:
        decoder.feed(await stream.receive_some(4096))
    return bytes(frame)


def _sealed(channel: SecureChannel, payload: bytes) -> bytes:
    return encode_frame(channel.seal(payload), 1 << 30)


Case = Callable[[TcpTransport], Awaitable[trio.SocketStream]]


async def random_bytes_before_handshake(server: TcpTransport) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(*server.listen)
    await stream.send_all(b"\x00\x00\x00\x10" + os.urandom(16))
    return stream


async def oversize_prefix_before_handshake(server: TcpTransport) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(*server.listen)
    await stream.send_all(struct.pack(">I", 1 << 30))
    return stream


async def wrong_shape_hello(server: TcpTransport) -> trio.SocketStream:
    stream = await trio.open_tcp_stream(*server.listen)
    await stream.send_all(encode_frame(cbor2.dumps({"v": 1, "pk": [1, 2, 3]})))
    return stream


async def unprovable_key(server: TcpTransport) -> trio.SocketStream:
    """A hello with a victim's public key, then a proof signed by someone else."""
    victim, liar = Identity.generate(), Identity.generate()
    stream = await trio.open_tcp_stream(*server.listen)
    handshake = Handshake(victim, initiator=True, listen=None)
    decoder = FrameDecoder(1024)
    await stream.send_all(encode_frame(handshake.hello()))
    handshake.identity = liar  # signs the transcript with a key the hello did not name
    proof = handshake.receive_hello(await _frame(stream, decoder))
    await stream.send_all(encode_frame(proof))
    return stream


async def never_speaks(server: TcpTransport) -> trio.SocketStream:
    return await trio.open_tcp_stream(*server.listen)


async def garbage_after_handshake(server: TcpTransport) -> trio.SocketStream:
    stream, _ = await _authenticated(server)
    await stream.send_all(encode_frame(os.urandom(200)))
    return stream


async def truncated_frame(server: TcpTransport) -> trio.SocketStream:
    stream, channel = await _authenticated(server)
    frame = _sealed(channel, encode_message(1, Ping()))
    await stream.send_all(frame[: len(frame) - 3])
    return stream


async def oversize_prefix_after_handshake(server: TcpTransport) -> trio.SocketStream:
    stream, _ = await _authenticated(server)
    await stream.send_all(struct.pack(">I", OPTIONS.max_frame + ABYTES + 1))
    return stream


async def wrong_shape_message(server: TcpTransport) -> trio.SocketStream:
    stream, channel = await _authenticated(server)
    await stream.send_all(_sealed(channel, cbor2.dumps({"t": "find_node", "id": 1, "target": 7})))
    return stream


async def unknown_message_type(server: TcpTransport) -> trio.SocketStream:
    stream, channel = await _authenticated(server)
    await stream.send_all(_sealed(channel, cbor2.dumps({"t": "launch_missiles", "id": 1})))
    return stream


async def cbor_that_is_not_a_map(server: TcpTransport) -> trio.SocketStream:
    stream, channel = await _authenticated(server)
    await stream.send_all(_sealed(channel, cbor2.dumps([1, 2, 3])))
    return stream


BAD_INPUT: dict[str, tuple[Case, str]] = {
    "random bytes before the handshake": (random_bytes_before_handshake, "hello"),
    "oversize prefix before the handshake": (oversize_prefix_before_handshake, "exceeds"),
    "wrong-shape hello": (wrong_shape_hello, "malformed hello"),
    "a key the peer cannot prove": (unprovable_key, "could not prove its identity"),
    "a connection that never speaks": (never_speaks, "no handshake within"),
    "random bytes after the handshake": (garbage_after_handshake, "failed authentication"),
    "a truncated frame": (truncated_frame, "truncated frame"),
    "oversize prefix after the handshake": (oversize_prefix_after_handshake, "exceeds"),
    "valid CBOR of the wrong shape": (wrong_shape_message, "field 'target'"),
    "CBOR that is not a map": (cbor_that_is_not_a_map, "must be a map"),
    "an unknown message type": (unknown_message_type, "unknown message type"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT), ids=list(BAD_INPUT))
async def test_bad_input_closes_only_that_connection(
    case: str, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    make, reason = BAD_INPUT[case]
    caplog.set_level(logging.WARNING, logger="p2pbackup.net.tcp")
    async with serving(nursery) as server, serving(nursery) as good:
        await good.request(contact_of(server), Ping(), timeout=5)  # an honest peer, connected
        bad = await make(server)
        assert await _read_until_closed(bad), "the server kept the bad connection open"
        await bad.aclose()
        assert any(reason in r.getMessage() for r in caplog.records), [
            r.getMessage() for r in caplog.records
        ]
        # The honest peer's connection and new connections still work.
        assert isinstance((await good.request(contact_of(server), Ping(), 5)).message, Pong)
        async with serving(nursery) as newcomer:
            assert isinstance((await newcomer.request(contact_of(server), Ping(), 5)).message, Pong)


async def test_a_peer_that_vanishes_mid_request_fails_only_that_call(
    nursery: trio.Nursery,
) -> None:
    stopped = trio.Event()

    async def hang(remote: Remote, message: Message) -> Message:
        stopped.set()
        await trio.sleep_forever()
        raise AssertionError

    async with serving(nursery) as client, serving(nursery, hang) as server:
        target = contact_of(server)

        async def call() -> None:
            with pytest.raises(PeerUnreachable):
                await client.request(target, Ping(), timeout=10)

        with trio.fail_after(5):
            async with trio.open_nursery() as calls:
                calls.start_soon(call)
                await stopped.wait()
                await server.aclose()


async def test_small_frames_go_out_ahead_of_queued_shares() -> None:
    """A DHT request queued behind shares on the same connection must not wait for
    megabytes to go out first; frames are sealed as they leave, so order is free."""
    send, receive = trio.open_memory_channel[bytes](64)
    big = [bytes([n]) * SEND_APART for n in range(3)]
    for frame in (big[0], big[1], b"find-1", big[2], b"find-2"):
        send.send_nowait(frame)
    send.close()
    frames = SmallFirst(receive)
    order = [await frames.next() for _ in range(6)]
    assert order == [b"find-1", big[0], b"find-2", big[1], big[2], None]


async def test_a_peers_other_open_connection_carries_requests_once_the_one_in_use_ends(
    nursery: trio.Nursery,
) -> None:
    """A peer behind a NAT held its reservation at a relay over a connection it opened
    while another with the relay was open, so the relay kept using the other one; once
    that ended, the relay dialled the peer's listen address for its next request, which
    behind a NAT never answers, and dropped the reservation after the timeout."""
    twin = Identity.generate()
    unlistened = trio.socket.socket()
    await unlistened.bind(("127.0.0.1", 0))  # bound, never listening: refused at once
    behind_nat = Contact(twin.node_id, *unlistened.getsockname()[:2])
    with unlistened:
        async with serving(nursery) as relay, serving_with(nursery, OPTIONS, identity=twin) as kept:
            async with serving_with(nursery, OPTIONS, identity=twin) as first:
                await first.request(contact_of(relay), Ping(), 5)
                await kept.request(contact_of(relay), Ping(), 5)
            answered = None
            with trio.move_on_after(3):
                while answered is None:
                    try:
                        answered = await relay.request(behind_nat, Ping(), timeout=1)
                    except PeerUnreachable:
                        await trio.sleep(0.05)
            assert answered is not None and isinstance(answered.message, Pong)
            assert relay.connected_to(twin.node_id)


async def test_disconnecting_a_peer_closes_its_connections_not_in_use_too(
    nursery: trio.Nursery,
) -> None:
    """A connection not in use takes over when the one in use ends: dropping a peer
    (an expelled member) must close that one as well."""
    twin = Identity.generate()
    async with (
        serving(nursery) as server,
        serving_with(nursery, OPTIONS, identity=twin) as first,
        serving_with(nursery, OPTIONS, identity=twin) as second,
    ):
        await first.request(contact_of(server), Ping(), 5)
        await second.request(contact_of(server), Ping(), 5)
        assert server.connected_to(twin.node_id)
        server.disconnect(twin.node_id)
        await trio.sleep(0.5)  # both ends see the closes
        assert not server.connected_to(twin.node_id)
