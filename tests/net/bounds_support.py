"""A real TcpTransport on 127.0.0.1 with small limits, and a hostile client that
speaks the project's own handshake and frames, for the exhaustion tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio

import p2pbackup.dht.messages  # noqa: F401  (registers the DHT messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Pong
from p2pbackup.net.contact import Contact
from p2pbackup.net.handshake import Handshake, SecureChannel
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.wire.frames import FrameDecoder, encode_frame
from p2pbackup.wire.messages import Message

Handler = Callable[[Remote, Message], Awaitable[Message]]


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def pong(remote: Remote, message: Message) -> Message:
    return Pong()


@asynccontextmanager
async def serving(
    nursery: trio.Nursery,
    options: TcpOptions,
    handler: Handler = pong,
    clock: Callable[[], float] | None = None,
    identity: Identity | None = None,
) -> AsyncIterator[TcpTransport]:
    """A transport serving until the block ends; its connections close with it.

    Its rate limits read `clock` (a `FakeClock` unless given), so no test's outcome
    depends on how fast the machine runs it."""
    transport = TcpTransport(
        identity or Identity.generate(), ("127.0.0.1", 0), options, clock=clock or FakeClock()
    )
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await transport.serve(handler, task_status=task_status)

    await nursery.start(run)
    try:
        yield transport
    finally:
        scope.cancel()


def contact_of(transport: TcpTransport) -> Contact:
    return Contact(transport.identity.node_id, *transport.listen)


@asynccontextmanager
async def raw_streams(
    count: int, address: tuple[str, int]
) -> AsyncIterator[list[trio.SocketStream]]:
    """`count` plain TCP connections to `address`, all closed when the block ends."""
    streams: list[trio.SocketStream] = []
    try:
        for _ in range(count):
            streams.append(await trio.open_tcp_stream(*address))
        yield streams
    finally:
        for stream in streams:
            await trio.aclose_forcefully(stream)


async def authenticate(
    stream: trio.SocketStream, identity: Identity | None = None
) -> SecureChannel:
    """Complete the handshake as `identity` (a fresh one unless given); the channel to
    seal requests with."""
    handshake = Handshake(identity or Identity.generate(), initiator=True, listen=None)
    decoder = FrameDecoder(1024)
    await stream.send_all(encode_frame(handshake.hello()))
    proof = handshake.receive_hello(await read_frame(stream, decoder))
    await stream.send_all(encode_frame(proof))
    return handshake.receive_auth(await read_frame(stream, decoder)).channel


async def read_frame(stream: trio.SocketStream, decoder: FrameDecoder) -> bytes:
    while (frame := decoder.next_frame()) is None:
        data = await stream.receive_some(65536)
        assert data, "closed before a whole frame"
        decoder.feed(data)
    return bytes(frame)


async def wait_closed(stream: trio.SocketStream, closed: trio.Event) -> None:
    """Set `closed` when the far end closes `stream`, discarding what it sends."""
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    closed.set()


async def trickle(stream: trio.SocketStream, closed: trio.Event, count: int, pause: float) -> int:
    """Send up to `count` bytes one at a time, `pause` seconds apart, until the far
    end closes; how many were sent."""
    for sent in range(count):
        if closed.is_set():
            return sent
        try:
            await stream.send_all(b"\0")
        except trio.BrokenResourceError:
            return sent
        await trio.sleep(pause)
    return count


class CountingListener:
    """Someone else's address: counts every connection made to it, speaks nothing."""

    def __init__(self) -> None:
        self.dialled = 0
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.address = ("127.0.0.1", listeners[0].socket.getsockname()[1])
        task_status.started()
        await trio.serve_listeners(self._take, listeners)

    async def _take(self, stream: trio.SocketStream) -> None:
        self.dialled += 1
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def counting_listener(nursery: trio.Nursery) -> AsyncIterator[CountingListener]:
    """A `CountingListener` on a free port of 127.0.0.1, stopped on leaving."""
    listener = CountingListener()
    async with running_in(nursery, listener.run):
        yield listener


@asynccontextmanager
async def running_in(
    nursery: trio.Nursery, serve: Callable[..., Awaitable[None]]
) -> AsyncIterator[None]:
    """Start `serve` (a task that reports when it is up) in `nursery`; cancel it on leaving."""
    scope = trio.CancelScope()

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await serve(task_status=task_status)

    await nursery.start(run)
    try:
        yield
    finally:
        scope.cancel()
