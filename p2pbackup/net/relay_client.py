"""Both ends of relaying, seen from the peers: holding reservations, and dialling through them.

`RelayClient` is what a peer nobody can dial runs: it keeps a reservation
with up to `want` relays among its candidates, renews each before it runs
out, picks another relay when one goes away, and reports the live relay
routes (for the handshake to advertise). When a relay says someone wants a
session, it opens one and serves it as if it had been accepted.

`RelayConnector` is the `RelayDialer` every peer uses to reach such a peer:
it asks the relay for a session and hands the stream to the transport, which
runs the ordinary handshake over it expecting the target's id (decision 0040).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import P2PBackupError, PeerUnreachable, RemoteError
from p2pbackup.net import hole_punch
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.hole_punch import PunchPort
from p2pbackup.net.relay_session import open_session
from p2pbackup.net.relay_wire import (
    RelayAccepted,
    RelayConnect,
    RelayIncoming,
    RelayReserve,
    RelayReserved,
    RelaySession,
)
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Address, Remote, Reply
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.net.relay")

Candidate = Contact | Address
RoutesSink = Callable[[tuple[Route, ...]], None]


class RelayedTransport(Protocol):
    """What a relayed peer needs of its transport: TCP's, or the simulator's, which
    delivers through a relay that holds the reservation and never opens a session."""

    identity: Identity

    @property
    def bound(self) -> Address: ...

    async def request(
        self, target: Contact | Address, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply: ...

    async def adopt_stream(self, stream: trio.abc.Stream, label: str) -> None: ...


class RelayConnector:
    """Opens a session to a peer through the relay a route names; with `public_host`
    (where others see this peer from), it first tries a hole punch to the peer."""

    def __init__(
        self,
        transport: TcpTransport,
        timeout: float = 5.0,
        public_host: Callable[[], str | None] | None = None,
    ) -> None:
        self.transport = transport
        self.timeout = timeout
        self.public_host = public_host
        self.punched = 0  # sessions that went direct by a hole punch
        self.seen_host: str | None = None  # where the last relay saw this peer from

    async def open(self, route: Route, target: bytes) -> trio.abc.Stream:
        assert route.relay is not None
        relay = Contact(route.relay, route.host, route.port)
        host = self.public_host() if self.public_host is not None else None
        port = PunchPort(self.transport.bound[0], listen=False) if host else None
        try:
            offered = None
            if port is not None and host is not None:
                await port.open()
                offered = hole_punch.offers([host], port.port)
            try:
                reply = await self.transport.request(
                    relay, RelayConnect(target, offered), self.timeout
                )
            except RemoteError as exc:
                raise PeerUnreachable(f"relay {route.host}:{route.port} refused: {exc}") from None
            if reply.remote.observed is not None:
                self.seen_host = reply.remote.observed[0]
            answer = reply.message
            if not isinstance(answer, RelaySession):
                raise PeerUnreachable(f"relay {route.host}:{route.port} answered {answer.TYPE}")
            if port is not None and answer.punch:
                direct = await port.run(hole_punch.targets(answer.punch), hole_punch.DIAL_WINDOW)
                if direct is not None:
                    self.punched += 1
                    log.info("direct connection to %s by hole punch", target.hex()[:12])
                    return direct
            return await open_session(route.address, answer.token, self.timeout)
        finally:
            if port is not None:
                port.close()


# How soon a client short of relays first looks at its candidates again.
LOOK_AGAIN = 0.5


class RelayClient:
    """Keeps reservations with up to `want` relays; `on_routes` hears the live routes."""

    def __init__(
        self,
        transport: RelayedTransport,
        candidates: Callable[[], Iterable[Candidate]],
        on_routes: RoutesSink,
        *,
        want: int = 2,
        timeout: float = 5.0,
        check_interval: float = 10.0,
        retry: float = 5.0,
        max_sessions: int = 32,
        clock: Callable[[], float] = time.monotonic,
        punch: bool = False,
    ) -> None:
        """`check_interval`: the longest time between two renewals, which is how long a
        relay that vanished quietly goes unnoticed; `retry`: how long a relay that failed
        is passed over, and how often candidates are looked at again; `punch`: answer
        a dialler's hole punch from the address each relay sees this peer at."""
        self.transport = transport
        self.candidates = candidates
        self.on_routes = on_routes
        self.want = want
        self.timeout = timeout
        self.check_interval = check_interval
        self.retry = retry
        self.max_sessions = max_sessions
        self.clock = clock
        self.punch = punch
        self.live: dict[bytes, Route] = {}  # relay id -> the route through it
        self.observed: dict[bytes, str] = {}  # relay id -> the host it sees this peer at
        self._trying: set[Address] = set()
        self._failed: dict[Address, float] = {}  # address -> when it last failed
        self._changed = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.sessions = 0  # relayed (or punched) sessions being opened or served

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self.live.values())

    def set_want(self, want: int) -> None:
        """Hold this many reservations from now on (0: let them go)."""
        self.want = want
        self._changed.set()

    def _publish(self) -> None:
        self.on_routes(self.routes)
        self._changed.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep reservations until cancelled."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                look_again = LOOK_AGAIN
                while True:
                    self._changed = trio.Event()
                    for candidate in self._choose():
                        address = candidate.address if isinstance(candidate, Contact) else candidate
                        self._trying.add(address)
                        nursery.start_soon(self._hold, candidate, address)
                    # Short of relays, with none to try: a joining peer's table fills within
                    # a second or two, and a peer nobody can dial waited `retry` for them.
                    # Sooner, then less and less often, up to `retry`.
                    wait = self.retry
                    if len(self._trying) < self.want:
                        wait, look_again = min(look_again, wait), min(look_again * 2, wait)
                    else:
                        look_again = LOOK_AGAIN
                    with trio.move_on_after(wait):
                        await self._changed.wait()
        finally:
            self._nursery = None  # closed: a late session is refused, not started there

    def _choose(self) -> list[Candidate]:
        """Candidates to try now: not held or being tried, not failed lately, not us."""
        room = self.want - len(self._trying)
        if room <= 0:
            return []
        now, chosen = self.clock(), []
        for address, when in list(self._failed.items()):
            if now - when >= self.retry:
                del self._failed[address]
        me = self.transport.identity.node_id
        for candidate in self.candidates():
            address = candidate.address if isinstance(candidate, Contact) else candidate
            if isinstance(candidate, Contact) and candidate.node_id == me:
                continue
            if address in self._trying or address in self._failed:
                continue
            chosen.append(candidate)
            if len(chosen) >= room:
                break
        return chosen

    async def _hold(self, candidate: Candidate, address: Address) -> None:
        """Reserve at one relay and renew until it fails; then let `run` pick another."""
        relay: bytes | None = None
        try:
            while True:
                target = candidate if relay is None else Contact(relay, *address)
                reply = await self.transport.request(target, RelayReserve(), self.timeout)
                if not isinstance(reply.message, RelayReserved):
                    raise PeerUnreachable(f"answered {reply.message.TYPE}")
                if reply.remote.observed is not None:
                    self.observed[reply.remote.node_id] = reply.remote.observed[0]
                if relay is None:
                    relay = reply.remote.node_id
                    if relay == self.transport.identity.node_id or relay in self.live:
                        return
                    self.live[relay] = Route(address[0], address[1], relay)
                    log.info("relayed through %s:%d (%s)", *address, relay.hex()[:12])
                    self._publish()
                await trio.sleep(min(self.check_interval, reply.message.ttl / 3))
                if len(self.live) > self.want:
                    log.info("letting relay %s:%d go: %d wanted", *address, self.want)
                    return
        except P2PBackupError as exc:
            what = "lost" if relay is not None else "refused or unreachable"
            log.warning("relay %s:%d %s: %s; choosing another", *address, what, exc)
            self._failed[address] = self.clock()
        finally:
            self._trying.discard(address)
            held = self.live.get(relay) if relay is not None else None
            if relay is not None and held is not None and held.address == address:
                del self.live[relay]
                self._publish()
            self._changed.set()

    async def handle(self, remote: Remote, message: Message) -> Message:
        """A relay we hold a reservation with says someone wants a session."""
        if not isinstance(message, RelayIncoming):
            raise P2PBackupError(f"{message.TYPE} is not a relayed peer's request")
        route = self.live.get(remote.node_id)
        if route is None or self._nursery is None:
            raise P2PBackupError("this peer holds no reservation with you")
        if self.sessions >= self.max_sessions:
            raise P2PBackupError(f"already {self.max_sessions} relayed sessions")
        self.sessions += 1
        try:
            port, offered = await self._punch_port(remote.node_id, message.punch)
            if self._nursery is None:  # stopped while the port was being opened
                if port is not None:
                    port.close()
                raise P2PBackupError("this peer is stopping")
            self._nursery.start_soon(self._come, route, message, port)
        except BaseException:
            self.sessions -= 1
            raise
        return RelayAccepted(offered)

    async def _punch_port(
        self, relay: bytes, asked: tuple[str, ...] | None
    ) -> tuple[PunchPort | None, tuple[str, ...] | None]:
        host = self.observed.get(relay)
        if not (self.punch and asked and host):
            return None, None
        port = PunchPort(self.transport.bound[0], listen=True)
        try:
            await port.open()
        except OSError as exc:
            port.close()
            log.info("no hole punch: %s", exc.strerror or exc)
            return None, None
        return port, hole_punch.offers([host], port.port)

    async def _come(self, route: Route, message: RelayIncoming, port: PunchPort | None) -> None:
        """Open the session (a punched stream, or the relayed one) and serve it."""
        label = f"{message.source.hex()[:12]} via {route}"
        try:
            stream: trio.abc.Stream | None = None
            try:
                if port is not None:
                    to = hole_punch.targets(message.punch)
                    stream = await port.run(to, hole_punch.ANSWER_WINDOW)
                    if stream is not None:
                        label = f"{message.source.hex()[:12]} by hole punch"
            finally:
                if port is not None:
                    port.close()
            if stream is None:
                try:
                    stream = await open_session(route.address, message.token, self.timeout)
                except PeerUnreachable as exc:
                    log.warning("cannot open a relayed session from %s: %s", label, exc)
                    return
            await self.transport.adopt_stream(stream, label)
        finally:
            self.sessions -= 1
