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

import logging
import time
from collections.abc import Callable

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError, PeerUnreachable, RemoteError, WireError
from p2pbackup.net.admission import Admission, peer_label
from p2pbackup.net.connection import Connection, Outgoing, Ticket, Waiter
from p2pbackup.net.contact import Contact
from p2pbackup.net.framing import Closed, receive_frame
from p2pbackup.net.handshake import ABYTES, MAX_HANDSHAKE_FRAME, Handshake
from p2pbackup.net.limits import ByteBudget, RateLimit
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.outbox import SEND_APART, SmallFirst
from p2pbackup.net.transport import Address, Handler, Reply, answer_request
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.frames import PREFIX, FrameDecoder, encode_frame, frame_prefix
from p2pbackup.wire.messages import Message, decode_message, encode_message

log = logging.getLogger("p2pbackup.net.tcp")

HANDSHAKE_READ = PREFIX.size + MAX_HANDSHAKE_FRAME
RATE_REFUSAL = "too many requests from this peer; slow down"


class TcpTransport:
    """A peer's TCP endpoint; `serve` must run for requests to work."""

    def __init__(
        self,
        identity: Identity,
        listen: Address,
        options: TcpOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.identity = identity
        self.options = options = options or TcpOptions()
        self._listen = listen
        self._handler: Handler | None = None
        self._nursery: trio.Nursery | None = None
        self._by_node: dict[bytes, Connection] = {}
        self._by_address: dict[Address, Connection] = {}
        self._dial_locks: dict[Address, trio.Lock] = {}
        self.admission = Admission(
            options.max_connections,
            options.max_unauthenticated,
            RateLimit(options.dials_per_minute / 60, options.dial_burst, clock),
            options.accept_pause,
        )
        self._live: set[Connection] = set()
        self._requests = RateLimit(options.requests_per_second, options.request_burst, clock)
        self._budget = ByteBudget(options.memory_budget)
        self._answering = trio.CapacityLimiter(options.max_answering)

    @property
    def listen(self) -> Address:
        return self._listen

    @property
    def connection_count(self) -> int:
        return len({id(c) for c in [*self._by_node.values(), *self._by_address.values()]})

    @property
    def unauthenticated_count(self) -> int:
        return self.admission.strangers

    @property
    def held_bytes(self) -> int:
        """What connections make this peer hold: partly received frames and unsent replies."""
        return sum(d.buffered for d in self.admission.handshaking) + sum(
            c.decoder.buffered + c.owed for c in self._live
        )

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

                def take(stream: trio.SocketStream) -> None:
                    nursery.start_soon(self._accepted, stream)

                for listener in listeners:
                    nursery.start_soon(self.admission.accept_loop, listener, take)
                task_status.started()
        finally:
            self._handler = self._nursery = None
            for conn in [*self._by_node.values(), *self._by_address.values()]:
                conn.close()
            self._by_node.clear()
            self._by_address.clear()

    # ---- incoming --------------------------------------------------------

    async def _accepted(self, stream: trio.SocketStream) -> None:
        label = peer_label(stream)
        try:
            try:
                conn = await self._handshake(stream, initiator=False, expected=None, label=label)
            except (HandshakeError, WireError, Closed, trio.BrokenResourceError, OSError) as exc:
                log.warning("closing connection from %s: %s", label, _reason(exc))
                await trio.aclose_forcefully(stream)
                return
            finally:
                self.admission.strangers -= 1
            self._by_node[conn.remote.node_id] = conn
            await self._run_connection(conn)
        finally:
            self.admission.sockets -= 1

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
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, Closed):
                raise PeerUnreachable(f"{where} is unreachable") from None
            if reply is None:
                raise PeerUnreachable(f"{where} closed the connection")
            if isinstance(reply, ErrorReply):
                raise RemoteError(reply.reason)
            dialled = address if self._by_address.get(address) is conn else None
            return Reply(conn.remote, reply, dialled)
        raise PeerUnreachable(f"{where} did not answer within {timeout:g}s")

    async def _connection(self, address: Address, expected: bytes | None) -> Connection:
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

    async def _dial(self, address: Address, expected: bytes | None) -> Connection:
        nursery = self._nursery
        if nursery is None:
            raise PeerUnreachable("this peer's transport is not running")
        where = f"{address[0]}:{address[1]}"
        self.admission.check_dial(address)
        stream = await trio.open_tcp_stream(*address)
        self.admission.sockets += 1
        try:
            conn = await self._handshake(stream, initiator=True, expected=expected, label=where)
        except BaseException:
            self.admission.sockets -= 1
            await trio.aclose_forcefully(stream)
            raise
        self._by_address[address] = conn
        self._by_node[conn.remote.node_id] = conn
        nursery.start_soon(self._run_dialled, conn)
        return conn

    async def _run_dialled(self, conn: Connection) -> None:
        try:
            await self._run_connection(conn)
        finally:
            self.admission.sockets -= 1

    async def _exchange(self, conn: Connection, message: Message) -> Message | None:
        request_id = conn.next_request_id()
        payload = self._encode(request_id, message)
        waiter = Waiter()
        conn.pending[request_id] = waiter
        try:
            if conn.closed:
                return None
            await conn.outbox_send.send(Outgoing(payload, reply=False))
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
    ) -> Connection:
        """The whole handshake, within `handshake_timeout` and holding at most its frames."""
        decoder = FrameDecoder(MAX_HANDSHAKE_FRAME)
        handshake = Handshake(
            self.identity, initiator=initiator, listen=self._listen, expected_node_id=expected
        )
        limit = self.options.handshake_timeout
        self.admission.handshaking.add(decoder)
        try:
            with trio.fail_after(limit):
                await stream.send_all(encode_frame(handshake.hello(), MAX_HANDSHAKE_FRAME))
                proof = handshake.receive_hello(await self._receive(stream, decoder))
                await stream.send_all(encode_frame(proof, MAX_HANDSHAKE_FRAME))
                established = handshake.receive_auth(await self._receive(stream, decoder))
        except trio.TooSlowError:
            raise HandshakeError(f"no handshake within {limit:g}s") from None
        finally:
            self.admission.handshaking.discard(decoder)
        decoder.max_frame = self.options.max_frame + ABYTES
        send, receive = trio.open_memory_channel[Outgoing](self.options.outbox_frames)
        return Connection(
            stream=stream,
            decoder=decoder,
            channel=established.channel,
            remote=established.remote,
            initiator=initiator,
            label=f"{label} ({established.remote.node_id.hex()[:12]})",
            outbox_send=send,
            outbox_receive=receive,
            budget=self._budget,
        )

    async def _receive(
        self, stream: trio.abc.ReceiveStream, decoder: FrameDecoder, counted: bool = False
    ) -> bytes:
        options = self.options
        if not counted:  # handshake frames: capped apart, and read no further than them
            return await receive_frame(
                stream, decoder, options.frame_timeout, options.idle_timeout, most=HANDSHAKE_READ
            )
        return await receive_frame(
            stream, decoder, options.frame_timeout, options.idle_timeout, self._budget
        )

    async def _run_connection(self, conn: Connection) -> None:
        """Read frames until the connection ends; each request is answered in its own task."""
        self._live.add(conn)
        try:
            with conn.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop, conn)
                    await self._read_until_closed(conn, nursery)
                    nursery.cancel_scope.cancel()
        finally:
            conn.close()
            self._live.discard(conn)
            self._forget(conn)
            await trio.aclose_forcefully(conn.stream)

    async def _read_until_closed(self, conn: Connection, nursery: trio.Nursery) -> None:
        # Errors end here, not in the nursery, so they are logged as one reason.
        limiter = trio.CapacityLimiter(self.options.max_concurrent_requests)
        try:
            await self._read_loop(conn, nursery, limiter)
        except (WireError, HandshakeError) as exc:
            log.warning("closing connection with %s: %s", conn.label, exc)
        except (Closed, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("connection with %s ended: %s", conn.label, _reason(exc))
        except Exception:  # a bug here must cost one connection, not the peer
            log.exception("closing connection with %s after an internal error", conn.label)

    async def _read_loop(
        self, conn: Connection, nursery: trio.Nursery, limiter: trio.CapacityLimiter
    ) -> None:
        options = self.options
        while True:
            # A remote that does not read its replies gets no more of them made.
            await conn.wait_for_room(options.reply_budget, options.idle_timeout)
            ciphertext = await self._receive(conn.stream, conn.decoder, counted=True)
            request_id, message = decode_message(conn.channel.open(ciphertext))
            if conn.is_reply(request_id):
                waiter = conn.pending.get(request_id)
                if waiter is not None:  # else a reply that came after its caller gave up
                    waiter.message = message
                    waiter.event.set()
                continue
            if not self._requests.allow(conn.remote.node_id):
                if self._requests.first_refusal(conn.remote.node_id):
                    log.warning(
                        "refusing requests from %s: more than %g a second",
                        conn.label,
                        options.requests_per_second,
                    )
                await self._send_reply(conn, self._encode(request_id, ErrorReply(RATE_REFUSAL)))
                continue
            # A peer that floods us with requests waits for its earlier ones, and
            # every connection waits its turn to be answered at all; the request
            # counts against the budget until then.
            token = Ticket(limiter, len(ciphertext))
            await limiter.acquire_on_behalf_of(token)
            await self._answering.acquire_on_behalf_of(token)
            self._budget.take(token.weight)
            nursery.start_soon(self._answer, conn, request_id, message, token)

    async def _answer(
        self, conn: Connection, request_id: int, message: Message, ticket: Ticket
    ) -> None:
        try:
            handler = self._handler
            if handler is None:
                return
            try:  # only the encoded reply is kept (and counted) while it waits
                reply = await answer_request(handler, conn.remote, message)
                payload = self._reply_payload(request_id, reply)
                del reply
            finally:
                self._answering.release_on_behalf_of(ticket)
                self._budget.give(ticket.weight)
            await self._send_reply(conn, payload)
        finally:
            ticket.limiter.release_on_behalf_of(ticket)

    def _reply_payload(self, request_id: int, reply: Message) -> bytes:
        try:
            return self._encode(request_id, reply)
        except WireError as exc:
            return self._encode(request_id, ErrorReply(str(exc)))

    async def _send_reply(self, conn: Connection, payload: bytes) -> None:
        """Queue an encoded reply, counting it as owed until the writer has sent it."""
        conn.owe(len(payload))
        try:
            await conn.outbox_send.send(Outgoing(payload, reply=True))
        except BaseException:  # cancelled or closed: it was never queued
            conn.paid(len(payload))
            raise

    async def _write_loop(self, conn: Connection) -> None:
        limit = self.options.max_frame + ABYTES
        try:
            frames = SmallFirst(conn.outbox_receive)
            while (outgoing := await frames.next()) is not None:
                size, reply = len(outgoing), outgoing.reply
                sealed = conn.channel.seal(outgoing.payload)
                del outgoing  # the sealed copy stands for the counted payload
                if len(sealed) < SEND_APART:
                    await conn.stream.send_all(encode_frame(sealed, limit))
                else:  # a share: joining prefix and body would copy it once more
                    await conn.stream.send_all(frame_prefix(len(sealed), limit))
                    await conn.stream.send_all(sealed)
                del sealed  # nor kept while the outbox is empty
                if reply:
                    conn.paid(size)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("cannot write to %s: %s", conn.label, _reason(exc))
            conn.close()

    def _forget(self, conn: Connection) -> None:
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


def _usable(conn: Connection | None, expected: bytes | None) -> bool:
    if conn is None or conn.closed:
        return False
    return expected is None or conn.remote.node_id == expected


def _reason(exc: BaseException) -> str:
    if isinstance(exc, Closed):
        return "closed by the peer"
    return str(exc) or type(exc).__name__
