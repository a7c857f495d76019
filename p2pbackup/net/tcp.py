"""The Transport over real TCP: authenticated, encrypted, connections reused.

Each connection starts with the handshake of `handshake.py`, after which
both sides may send requests over it: the side that dialled numbers its
requests even, the other odd, so a frame is a reply exactly when its id has
our parity. One writer task per connection seals and sends frames in order,
so a caller that times out never leaves half a frame on the wire. Anything
malformed from a peer closes that connection with a logged reason; the
listener and every other connection go on.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError, PeerUnreachable, RemoteError, WireError
from p2pbackup.net.contact import Contact
from p2pbackup.net.handshake import ABYTES, MAX_HANDSHAKE_FRAME, Handshake, SecureChannel
from p2pbackup.net.outbox import SEND_APART, SmallFirst
from p2pbackup.net.transport import Address, Handler, Remote, Reply, answer_request
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.frames import DEFAULT_MAX_FRAME, FrameDecoder, encode_frame, frame_prefix
from p2pbackup.wire.messages import REQUEST_ID_MAX, Message, decode_message, encode_message

log = logging.getLogger("p2pbackup.net.tcp")

RECEIVE_CHUNK = 256 * 1024


class _Closed(Exception):
    """The far end closed the connection cleanly."""


@dataclass(frozen=True)
class TcpOptions:
    max_frame: int = DEFAULT_MAX_FRAME
    handshake_timeout: float = 10.0
    # A frame that has started must finish within this; a silent connection
    # with nothing pending is dropped after `idle_timeout`.
    frame_timeout: float = 30.0
    idle_timeout: float = 600.0
    max_concurrent_requests: int = 64
    outbox_frames: int = 64


class _Waiter:
    __slots__ = ("event", "message")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.message: Message | None = None


@dataclass(eq=False)
class _Connection:
    stream: trio.abc.Stream
    decoder: FrameDecoder
    channel: SecureChannel
    remote: Remote
    initiator: bool
    label: str
    outbox_send: trio.MemorySendChannel[bytes]
    outbox_receive: trio.MemoryReceiveChannel[bytes]
    pending: dict[int, _Waiter] = field(default_factory=dict)
    closed: bool = False
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    def __post_init__(self) -> None:
        self._ids = itertools.count(0 if self.initiator else 1, 2)

    def next_request_id(self) -> int:
        return next(self._ids) % (REQUEST_ID_MAX + 1)

    def is_reply(self, request_id: int) -> bool:
        return request_id % 2 == (0 if self.initiator else 1)

    def close(self) -> None:
        self.closed = True
        self.scope.cancel()
        for waiter in self.pending.values():
            waiter.event.set()  # with no message: the caller sees the peer as unreachable


async def _receive_frame(
    stream: trio.abc.ReceiveStream, decoder: FrameDecoder, options: TcpOptions
) -> bytes:
    """The next frame; raises `_Closed` on a clean end, `WireError` on a bad or stalled one."""
    while True:
        frame = decoder.next_frame()
        if frame is not None:
            return frame
        wait = options.frame_timeout if decoder.buffered else options.idle_timeout
        with trio.move_on_after(wait):
            data = await stream.receive_some(RECEIVE_CHUNK)
            if not data:
                if decoder.buffered:
                    raise WireError(f"connection closed inside a frame ({decoder.buffered} bytes)")
                raise _Closed
            decoder.feed(data)
            continue
        if decoder.buffered:
            raise WireError(f"truncated frame: {decoder.buffered} bytes, then {wait:g}s of silence")
        raise _Closed  # idle


class TcpTransport:
    """A peer's TCP endpoint; `serve` must run for requests to work."""

    def __init__(
        self, identity: Identity, listen: Address, options: TcpOptions | None = None
    ) -> None:
        self.identity = identity
        self.options = options or TcpOptions()
        self._listen = listen
        self._handler: Handler | None = None
        self._nursery: trio.Nursery | None = None
        self._by_node: dict[bytes, _Connection] = {}
        self._by_address: dict[Address, _Connection] = {}
        self._dial_locks: dict[Address, trio.Lock] = {}

    @property
    def listen(self) -> Address:
        return self._listen

    @property
    def connection_count(self) -> int:
        return len({id(c) for c in [*self._by_node.values(), *self._by_address.values()]})

    async def serve(
        self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        host, port = self._listen
        listeners = await trio.open_tcp_listeners(port, host=host)
        # With port 0 the system picks one; that is the address peers must use.
        bound = listeners[0].socket.getsockname()
        self._listen = (host, int(bound[1]))
        try:
            async with trio.open_nursery() as nursery:
                self._handler, self._nursery = handler, nursery
                await nursery.start(trio.serve_listeners, self._accepted, listeners)
                task_status.started()
        finally:
            self._handler = self._nursery = None
            for conn in [*self._by_node.values(), *self._by_address.values()]:
                conn.close()
            self._by_node.clear()
            self._by_address.clear()

    # ---- incoming --------------------------------------------------------

    async def _accepted(self, stream: trio.SocketStream) -> None:
        label = _peer_label(stream)
        try:
            with trio.fail_after(self.options.handshake_timeout):
                conn = await self._handshake(stream, initiator=False, expected=None, label=label)
        except trio.TooSlowError:
            log.warning(
                "closing connection from %s: no handshake within %gs",
                label,
                self.options.handshake_timeout,
            )
            await trio.aclose_forcefully(stream)
            return
        except (HandshakeError, WireError, _Closed, trio.BrokenResourceError, OSError) as exc:
            log.warning("closing connection from %s: %s", label, _reason(exc))
            await trio.aclose_forcefully(stream)
            return
        self._by_node[conn.remote.node_id] = conn
        await self._run_connection(conn)

    # ---- outgoing --------------------------------------------------------

    async def request(self, target: Contact | Address, message: Message, timeout: float) -> Reply:
        address = target.address if isinstance(target, Contact) else target
        expected = target.node_id if isinstance(target, Contact) else None
        where = f"{address[0]}:{address[1]}"
        with trio.move_on_after(timeout):
            try:
                conn = await self._connection(address, expected)
                reply = await self._exchange(conn, message)
            except (HandshakeError, WireError) as exc:
                raise PeerUnreachable(f"{where}: {exc}") from None
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, _Closed):
                raise PeerUnreachable(f"{where} is unreachable") from None
            if reply is None:
                raise PeerUnreachable(f"{where} closed the connection")
            if isinstance(reply, ErrorReply):
                raise RemoteError(reply.reason)
            return Reply(conn.remote, reply)
        raise PeerUnreachable(f"{where} did not answer within {timeout:g}s")

    async def _connection(self, address: Address, expected: bytes | None) -> _Connection:
        conn = self._by_node.get(expected) if expected is not None else None
        if conn is None or conn.closed:
            conn = self._by_address.get(address)
        if _usable(conn, expected):
            assert conn is not None
            return conn
        lock = self._dial_locks.setdefault(address, trio.Lock())
        async with lock:
            # Another request may have dialled while we waited for the lock.
            conn = self._by_address.get(address)
            if _usable(conn, expected):
                assert conn is not None
                return conn
            return await self._dial(address, expected)

    async def _dial(self, address: Address, expected: bytes | None) -> _Connection:
        nursery = self._nursery
        if nursery is None:
            raise PeerUnreachable("this peer's transport is not running")
        stream = await trio.open_tcp_stream(*address)
        try:
            conn = await self._handshake(
                stream, initiator=True, expected=expected, label=f"{address[0]}:{address[1]}"
            )
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        self._by_address[address] = conn
        self._by_node[conn.remote.node_id] = conn
        nursery.start_soon(self._run_connection, conn)
        return conn

    async def _exchange(self, conn: _Connection, message: Message) -> Message | None:
        request_id = conn.next_request_id()
        payload = self._encode(request_id, message)
        waiter = _Waiter()
        conn.pending[request_id] = waiter
        try:
            if conn.closed:
                return None
            await conn.outbox_send.send(payload)
            await waiter.event.wait()
        finally:
            conn.pending.pop(request_id, None)
        return waiter.message

    def _encode(self, request_id: int, message: Message) -> bytes:
        payload = encode_message(request_id, message)
        if len(payload) > self.options.max_frame:
            raise WireError(f"a {message.TYPE} message of {len(payload)} bytes exceeds the limit")
        return payload

    # ---- both directions -------------------------------------------------

    async def _handshake(
        self, stream: trio.abc.Stream, *, initiator: bool, expected: bytes | None, label: str
    ) -> _Connection:
        decoder = FrameDecoder(MAX_HANDSHAKE_FRAME)
        handshake = Handshake(
            self.identity, initiator=initiator, listen=self._listen, expected_node_id=expected
        )
        await stream.send_all(encode_frame(handshake.hello(), MAX_HANDSHAKE_FRAME))
        proof = handshake.receive_hello(await _receive_frame(stream, decoder, self.options))
        await stream.send_all(encode_frame(proof, MAX_HANDSHAKE_FRAME))
        established = handshake.receive_auth(await _receive_frame(stream, decoder, self.options))
        decoder.max_frame = self.options.max_frame + ABYTES
        send, receive = trio.open_memory_channel[bytes](self.options.outbox_frames)
        return _Connection(
            stream=stream,
            decoder=decoder,
            channel=established.channel,
            remote=established.remote,
            initiator=initiator,
            label=f"{label} ({established.remote.node_id.hex()[:12]})",
            outbox_send=send,
            outbox_receive=receive,
        )

    async def _run_connection(self, conn: _Connection) -> None:
        """Read frames until the connection ends; each request is answered in its own task."""
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, conn)
                    await self._read_until_closed(conn, nursery)
                    nursery.cancel_scope.cancel()
        finally:
            conn.close()
            self._forget(conn)
            await trio.aclose_forcefully(conn.stream)

    async def _read_until_closed(self, conn: _Connection, nursery: trio.Nursery) -> None:
        # Errors end here, not in the nursery, so they are logged as one reason.
        limiter = trio.CapacityLimiter(self.options.max_concurrent_requests)
        try:
            await self._read_loop(conn, nursery, limiter)
        except (WireError, HandshakeError) as exc:
            log.warning("closing connection with %s: %s", conn.label, exc)
        except (_Closed, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("connection with %s ended: %s", conn.label, _reason(exc))
        except Exception:  # a bug here must cost one connection, not the peer
            log.exception("closing connection with %s after an internal error", conn.label)

    async def _read_loop(
        self, conn: _Connection, nursery: trio.Nursery, limiter: trio.CapacityLimiter
    ) -> None:
        while True:
            ciphertext = await _receive_frame(conn.stream, conn.decoder, self.options)
            request_id, message = decode_message(conn.channel.open(ciphertext))
            if conn.is_reply(request_id):
                waiter = conn.pending.get(request_id)
                if waiter is not None:  # else a reply that came after its caller gave up
                    waiter.message = message
                    waiter.event.set()
                continue
            # A peer that floods us with requests waits for its earlier ones.
            token = object()
            await limiter.acquire_on_behalf_of(token)
            nursery.start_soon(self._answer, conn, request_id, message, limiter, token)

    async def _answer(
        self,
        conn: _Connection,
        request_id: int,
        message: Message,
        limiter: trio.CapacityLimiter,
        token: object,
    ) -> None:
        try:
            handler = self._handler
            if handler is None:
                return
            reply = await answer_request(handler, conn.remote, message)
            try:
                payload = self._encode(request_id, reply)
            except WireError as exc:
                payload = self._encode(request_id, ErrorReply(str(exc)))
            await conn.outbox_send.send(payload)
        finally:
            limiter.release_on_behalf_of(token)

    async def _write_loop(self, conn: _Connection) -> None:
        limit = self.options.max_frame + ABYTES
        try:
            frames = SmallFirst(conn.outbox_receive)
            while (payload := await frames.next()) is not None:
                sealed = conn.channel.seal(payload)
                if len(sealed) < SEND_APART:
                    await conn.stream.send_all(encode_frame(sealed, limit))
                else:  # a share: joining prefix and body would copy it once more
                    await conn.stream.send_all(frame_prefix(len(sealed), limit))
                    await conn.stream.send_all(sealed)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("cannot write to %s: %s", conn.label, _reason(exc))
            conn.close()

    def _forget(self, conn: _Connection) -> None:
        if self._by_node.get(conn.remote.node_id) is conn:
            del self._by_node[conn.remote.node_id]
        for address, known in list(self._by_address.items()):
            if known is conn:
                del self._by_address[address]

    async def aclose(self) -> None:
        for conn in [*self._by_node.values(), *self._by_address.values()]:
            conn.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()


def _usable(conn: _Connection | None, expected: bytes | None) -> bool:
    if conn is None or conn.closed:
        return False
    return expected is None or conn.remote.node_id == expected


def _peer_label(stream: trio.SocketStream) -> str:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return "an unknown address"
    return f"{host}:{port}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, _Closed):
        return "closed by the peer"
    return str(exc) or type(exc).__name__
