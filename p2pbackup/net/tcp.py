"""The Transport over real TCP: authenticated, encrypted, connections reused.

Each connection starts with the handshake of `handshake.py`, after which both
sides may send requests over it: the dialler numbers its requests even, the
other odd, so a frame is a reply exactly when its id has our parity. One writer
task per connection sends frames in order, so a caller that times out never
leaves half a frame on the wire. Anything malformed from a peer closes that
connection with a logged reason; the listener and other connections go on."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from functools import partial

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import HandshakeError, PeerUnreachable, RemoteError, WireError
from p2pbackup.net.admission import Admission, peer_address, peer_label
from p2pbackup.net.connection import Connection, Outgoing, Waiter, received_over, usable
from p2pbackup.net.connection_index import ConnectionIndex
from p2pbackup.net.connection_loop import ConnectionLoop, encode_checked, reason
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.dialer import (
    DIAL_FAILURES,
    DialLocks,
    DirectTries,
    RelayDialer,
    describe,
    dial_first,
    dial_order,
    open_route,
)
from p2pbackup.net.framing import Closed
from p2pbackup.net.handshake import ABYTES, MAX_HANDSHAKE_FRAME, OPEN_GATE, Gate, Handshake
from p2pbackup.net.handshaking import HANDSHAKE_READ, shake_hands
from p2pbackup.net.interfaces import Interface
from p2pbackup.net.limits import ByteBudget, RateLimit
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.relay_session import SESSION_MAGIC, RelaySessions, first_bytes, refuse_session
from p2pbackup.net.transport import Address, Handler, Remote, Reply
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.frames import FrameDecoder
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.net.tcp")


class TcpTransport:
    """A peer's TCP endpoint; `serve` must run for requests to work."""

    def __init__(
        self,
        identity: Identity,
        listen: Address,
        options: TcpOptions | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        gate: Gate = OPEN_GATE,
    ) -> None:
        self.identity = identity
        self.options = options = options or TcpOptions()
        self.gate = gate
        self._listen = listen
        # What the handshake tells others: the main address and further routes.
        self._advertised: Address | None = None
        self._routes: tuple[Route, ...] = ()
        self.relay_dialer: RelayDialer | None = None
        # This machine's interfaces: routes on their networks are dialled first.
        self.interfaces: tuple[Interface, ...] = ()
        # Told of each remote a handshake established (what it says it sees us at).
        self.on_handshake: Callable[[Remote], None] | None = None
        self.relay_sessions: RelaySessions = refuse_session  # a relay serves them
        self._handler: Handler | None = None
        self._nursery: trio.Nursery | None = None
        self._index = ConnectionIndex()
        self._dial_locks = DialLocks()
        self._direct = DirectTries()
        self.admission = Admission(
            options.max_connections,
            options.max_unauthenticated,
            RateLimit(options.dials_per_minute / 60, options.dial_burst, clock),
            options.accept_pause,
        )
        self._live: set[Connection] = set()
        self._budget = ByteBudget(options.memory_budget)
        self._loop = ConnectionLoop(
            options,
            self._budget,
            RateLimit(options.requests_per_second, options.request_burst, clock),
            lambda: self._handler,
        )

    @property
    def listen(self) -> Address:
        """The main address others reach this peer at (what it advertises)."""
        return self._advertised or self._listen

    @property
    def bound(self) -> Address:
        """The address the listener is bound to (perhaps 0.0.0.0 or ::)."""
        return self._listen

    @property
    def routes(self) -> tuple[Route, ...]:  # what this peer advertises besides its address
        return self._routes

    def set_advertised(
        self, listen: Address | None = None, routes: tuple[Route, ...] | None = None
    ) -> None:
        """What new handshakes tell others: the main address (None: the bound one), routes."""
        self._advertised = listen
        if routes is not None:
            self._routes = routes

    def disconnect(self, node_id: bytes) -> None:
        """Drop every connection with `node_id`, unused ones too: one would take over."""
        for conn in {*self._index.every(), *self._live}:
            if conn.remote.node_id == node_id:
                conn.close()

    @property
    def connection_count(self) -> int:
        return len(self._index.every())

    @property
    def unauthenticated_count(self) -> int:
        return self.admission.strangers

    @property
    def held_bytes(self) -> int:
        """What connections make this peer hold: partly received frames and unsent replies."""
        return sum(d.buffered for d in self.admission.handshaking) + sum(
            c.decoder.holding + c.owed for c in self._live
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
            for conn in self._index.every():
                conn.close()
            self._index.clear()

    # ---- incoming --------------------------------------------------------

    async def _accepted(self, stream: trio.SocketStream) -> None:
        label = peer_label(stream)
        try:
            try:
                first = await first_bytes(stream, self.options.handshake_timeout, HANDSHAKE_READ)
                conn = None  # a relayed session goes to the relay, not to a handshake
                if not first.startswith(SESSION_MAGIC):
                    conn = await self._handshake(
                        stream,
                        initiator=False,
                        expected=None,
                        label=label,
                        seen=peer_address(stream),
                        first=first,
                    )
            except (HandshakeError, WireError, Closed, trio.BrokenResourceError, OSError) as exc:
                log.warning("closing connection from %s: %s", label, reason(exc))
                await trio.aclose_forcefully(stream)
                return
            finally:
                self.admission.strangers -= 1
            if conn is None:
                return await self.relay_sessions(stream, first, label)
            self._index.accepted(conn)
            await self._run_connection(conn)
        finally:
            self.admission.sockets -= 1

    async def adopt_stream(self, stream: trio.abc.Stream, label: str) -> None:
        """Serve a connection that reached us another way (through a relay) as if it
        had been accepted; returns when it ends. The caller bounds how many it adopts."""
        try:
            conn = await self._handshake(stream, initiator=False, expected=None, label=label)
        except (HandshakeError, WireError, Closed, trio.BrokenResourceError, OSError) as exc:
            log.warning("closing relayed connection from %s: %s", label, reason(exc))
            await trio.aclose_forcefully(stream)
            return
        conn.relayed = True
        self._index.accepted(conn)
        await self._run_connection(conn)

    # ---- outgoing --------------------------------------------------------

    def connected_to(self, node_id: bytes) -> bool:
        """Whether a connection with the peer is open (a request to it needs no dial)."""
        return self._index.connected_to(node_id)

    def received_from(self, node_id: bytes) -> int:
        """Bytes come so far from the peer over the connections open with it (`received_over`)."""
        return received_over(self._live, node_id)

    async def request(
        self, target: Contact | Address, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply:
        contact = target if isinstance(target, Contact) else None
        address = target.address if isinstance(target, Contact) else target
        expected = target.node_id if isinstance(target, Contact) else None
        where = f"{address[0]}:{address[1]}"
        with trio.move_on_after(timeout):
            try:
                conn = await self._connection(address, expected, contact, dialled)
                reply = await self._exchange(conn, message)
            except (HandshakeError, WireError) as exc:
                raise PeerUnreachable(f"{where}: {exc}") from None
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, Closed):
                raise PeerUnreachable(f"{where} is unreachable") from None
            if reply is None:
                raise PeerUnreachable(f"{where} closed the connection")
            if isinstance(reply, ErrorReply):
                raise RemoteError(reply.reason)
            ours = address if self._index.at_address(address) is conn else None
            return Reply(conn.remote, reply, ours)
        raise PeerUnreachable(f"{where} did not answer within {timeout:g}s")

    async def _connection(
        self,
        address: Address,
        expected: bytes | None,
        contact: Contact | None = None,
        dialled: bool = False,
    ) -> Connection:
        conn = self._index.to_node(expected) if expected is not None and not dialled else None
        if conn is None or conn.closed:
            conn = self._index.at_address(address)
        if usable(conn, expected):
            assert conn is not None
            if conn.relayed and contact is not None:
                self._try_direct(address, expected, contact)
            return conn
        own = self.identity.node_id
        routes = [Route(*address)] if contact is None else dial_order(contact, self.interfaces, own)
        # One dial at a time per address and routes: a dial-back to a peer's LAN address
        # and one through its relays (same main address) must not wait on each other.
        async with self._dial_locks.hold((address, *routes)):
            # Another request may have dialled while we waited for the lock.
            conn = self._index.at_address(address)
            if usable(conn, expected) and conn is not None:
                return conn
            return await self._dial(address, expected, routes)

    def _try_direct(self, address: Address, expected: bytes | None, contact: Contact) -> None:
        """Dial a peer open through a relay directly, now and then, beside the requests
        the relayed connection carries; a direct connection that opens carries the next.
        (A request that waited for the try waited out its timeout when the peer, behind
        a NAT, had no direct route; a relay then dropped a reservation held open.)"""
        nursery, now = self._nursery, trio.current_time()
        if nursery is None or not self._direct.worth_trying(contact, now):
            return
        self._direct.failed(contact.node_id, now)  # one try per `retry_after`, however it ends
        own = self.identity.node_id
        routes = [r for r in dial_order(contact, self.interfaces, own) if not r.relay]

        async def dial() -> None:
            with trio.move_on_after(self.options.dial_attempt_timeout * max(1, len(routes))):
                async with self._dial_locks.hold((address, *routes)):
                    with contextlib.suppress(*DIAL_FAILURES):
                        await self._dial(address, expected, routes)

        if routes:
            nursery.start_soon(dial)

    async def _dial(
        self, address: Address, expected: bytes | None, routes: list[Route]
    ) -> Connection:
        """The first of `routes` to open (`dial_first`); the connection is kept under
        `address`, the contact's main one, whichever opened."""
        return await dial_first(address, routes, partial(self._dial_route, address, expected))

    async def _dial_route(
        self, address: Address, expected: bytes | None, route: Route
    ) -> Connection:
        nursery = self._nursery
        if nursery is None:
            raise PeerUnreachable("this peer's transport is not running")
        self.admission.check_dial(route.address if route.relay is None else address)
        stream = await open_route(route, expected, self.relay_dialer)
        self.admission.sockets += 1
        try:
            seen = route.address if route.relay is None else None
            conn = await self._handshake(
                stream, initiator=True, expected=expected, label=describe(route), seen=seen
            )
        except BaseException:
            self.admission.sockets -= 1
            await trio.aclose_forcefully(stream)
            raise
        conn.relayed = route.relay is not None
        self._index.dialled(address, conn)
        nursery.start_soon(self._run_dialled, conn)
        return conn

    async def _run_dialled(self, conn: Connection) -> None:
        try:
            await self._run_connection(conn)
        finally:
            self.admission.sockets -= 1

    async def _exchange(self, conn: Connection, message: Message) -> Message | None:
        request_id = conn.next_request_id()
        payload = encode_checked(request_id, message, self.options.max_frame)
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

    # ---- both directions -------------------------------------------------

    def new_handshake(
        self, initiator: bool, expected: bytes | None, seen: Address | None
    ) -> Handshake:  # one side of a handshake telling what this peer advertises
        return Handshake(
            self.identity,
            initiator=initiator,
            listen=self.listen,
            expected_node_id=expected,
            routes=self._routes,
            seen=seen,
            gate=self.gate,
        )

    async def _handshake(
        self,
        stream: trio.abc.Stream,
        *,
        initiator: bool,
        expected: bytes | None,
        label: str,
        seen: Address | None = None,
        first: bytes = b"",
    ) -> Connection:
        """The whole handshake, within `handshake_timeout` and holding at most its frames."""
        decoder = FrameDecoder(MAX_HANDSHAKE_FRAME)
        decoder.feed(first)
        handshake = self.new_handshake(initiator, expected, seen)
        established = await shake_hands(
            stream, handshake, decoder, self.options, self.admission.handshaking
        )
        if self.on_handshake is not None:
            self.on_handshake(established.remote)
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

    async def _run_connection(self, conn: Connection) -> None:
        """Read frames until the connection ends; each request is answered in its own task."""
        self._live.add(conn)
        try:
            await self._loop.run(conn)
        finally:
            self._live.discard(conn)
            self._index.ended(conn, self._live)

    async def aclose(self) -> None:
        for conn in self._index.every():
            conn.close()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
