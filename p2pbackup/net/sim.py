"""An in-memory network on trio's clock, for tests and the simulator.

Run it under `trio.testing.MockClock(autojump_threshold=0)` and hours of
virtual time pass in milliseconds of wall time. Messages go through the same
CBOR codec and schema checks as on TCP, cross links with a latency fixed per
link, and can be lost, cut by partitions or swallowed by crashed peers. All
randomness comes from the generator handed in, so a seed replays exactly
(together with `at_once.seed_trio_scheduler`).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.errors import PeerUnreachable, RemoteError, WireError
from p2pbackup.net.at_once import ANSWERED_AT_ONCE, Alarm, Pending, run_at_once
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.transport import Address, Handler, Remote, Reply, answer_request
from p2pbackup.wire.common import ErrorReply
from p2pbackup.wire.frames import DEFAULT_MAX_FRAME
from p2pbackup.wire.messages import Message, decode_message, encode_message

log = logging.getLogger("p2pbackup.net.sim")

Packet = bytes | tuple[int, Message]


@dataclass
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    lost: int = 0
    bytes: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class SimNetwork:
    """The virtual wires between simulated peers."""

    def __init__(
        self,
        rng: random.Random,
        *,
        latency: tuple[float, float] = (0.005, 0.080),
        loss: float = 0.0,
        max_frame: int = DEFAULT_MAX_FRAME,
        encode: bool = True,
    ) -> None:
        self.rng = rng
        self.encode = encode
        self.latency_range = latency
        self.loss = loss
        self.max_frame = max_frame
        self.stats = NetworkStats()
        # (time, from, to, type) of every request when set to a list: two runs
        # of one seed must produce equal traces.
        self.trace: list[tuple[float, Address, Address, str]] | None = None
        self._salt = rng.getrandbits(64).to_bytes(8, "big")
        self._endpoints: dict[Address, SimTransport] = {}
        self._group_of: dict[Address, int] = {}
        self._latency_cache: dict[tuple[Address, Address], float] = {}
        self._queue: list[tuple[float, int, Pending, Callable[[], None]]] = []
        # Relays by address, each with a test of who holds a reservation there.
        self._relays: dict[Address, Callable[[bytes], bool]] = {}
        self._order = itertools.count()
        # Wakes the task running `run` when its next event is due, while it sleeps.
        self._alarm: Alarm | None = None
        self._waiting = False

    def transport(
        self, identity: Identity, listen: Address, *, reachable: bool = True
    ) -> SimTransport:
        """A peer's endpoint; an unreachable one (behind a NAT) is reached only
        through a relay that holds its reservation, and reaches everyone."""
        return SimTransport(self, identity, listen, reachable)

    def carry(self, relay: Address, holds: Callable[[bytes], bool]) -> None:
        """The peer at `relay` relays for the node ids `holds` says reserved there
        (a `RelayBook.reserved`): the same reservations as on TCP, without sessions."""
        self._relays[relay] = holds

    def relayed_hops(self, source: Address, target: Contact | Address) -> list[Address] | None:
        """The way to a peer behind a NAT: through a relay route of the target's whose
        relay is up and holds its reservation; None when there is none."""
        address = target.address if isinstance(target, Contact) else target
        peer = self._endpoints[address]
        for route in target.routes if isinstance(target, Contact) else ():
            holds, relay = self._relays.get(route.address), self._endpoints.get(route.address)
            if route.relay is None or holds is None or relay is None:
                continue
            if relay.identity.node_id == route.relay and holds(peer.identity.node_id):
                return [source, route.address, address]
        return None

    def _path_latency(self, hops: list[Address]) -> float:
        return sum(self.link_latency(a, b) for a, b in itertools.pairwise(hops))

    def _path_dropped(self, hops: list[Address]) -> bool:
        return any(self._dropped(a, b) for a, b in itertools.pairwise(hops))

    def is_up(self, address: Address) -> bool:
        return address in self._endpoints

    # ---- faults --------------------------------------------------------

    def partition(self, *groups: set[Address]) -> None:
        """Cut the mesh: only peers of one group reach each other (unlisted ones form a group)."""
        self._group_of = {a: i + 1 for i, group in enumerate(groups) for a in group}

    def heal(self) -> None:
        self._group_of = {}

    def connected(self, a: Address, b: Address) -> bool:
        return self._group_of.get(a, 0) == self._group_of.get(b, 0)

    # ---- delivery ------------------------------------------------------

    def link_latency(self, a: Address, b: Address) -> float:
        """One-way latency of a link; stable for the link, different across links."""
        key = (a, b) if a <= b else (b, a)
        cached = self._latency_cache.get(key)
        if cached is None:
            digest = hashlib.blake2b(repr(key).encode() + self._salt, digest_size=8).digest()
            fraction = int.from_bytes(digest, "big") / 2**64
            low, high = self.latency_range
            # Whole milliseconds: messages due at one instant wake in one clock
            # jump, which is most of what makes thousands of peers affordable.
            cached = round(low + (high - low) * fraction, 3)
            self._latency_cache[key] = cached
        return cached

    def _dropped(self, a: Address, b: Address) -> bool:
        if not self.connected(a, b):
            return True
        if self.loss and self.rng.random() < self.loss:
            self.stats.lost += 1
            return True
        return False

    def _endpoint(self, address: Address) -> SimTransport | None:
        return self._endpoints.get(address)

    # ---- the codec ----------------------------------------------------

    def _pack(self, request_id: int, message: Message) -> Packet:
        """Frame bytes as on TCP; or, with `encode` off, the message itself.

        Skipping CBOR halves the cost of a message in a ten-thousand-peer run;
        tests keep it on so every message crosses the same schema checks.
        """
        if not self.encode:
            return (request_id, message)
        payload = encode_message(request_id, message)
        if len(payload) > self.max_frame:
            raise WireError(f"message of {len(payload)} bytes exceeds the frame limit")
        self.stats.bytes += len(payload)
        return payload

    def _unpack(self, packet: Packet) -> tuple[int, Message]:
        if isinstance(packet, bytes):
            return decode_message(packet)
        return packet

    # ---- the event queue -----------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Deliver due events until cancelled; the network needs this task running.

        One task wakes for every instant at which something is due and hands
        out everything due then, instead of one timer per message: with
        thousands of peers the timers, not the messages, would cost the most.
        Where it would run alone, its alarm runs `_wake` in its stead (`Alarm`).
        """
        task_status.started()
        self._alarm = Alarm(trio.lowlevel.current_task(), inline=self._wake)
        self._sleep()
        while True:
            await trio.lowlevel.wait_task_rescheduled(self._stopped)
            self._wake(trio.current_time())

    def _wake(self, now: float) -> None:
        """Run every action due by `now`, in the order queued, and sleep again (the task,
        or its alarm in its stead)."""
        self._waiting = False
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, _, guard, action = heapq.heappop(queue)
            if not guard.done:
                action()
        self._sleep()

    def _sleep(self) -> None:
        """Set the alarm for the next event still wanted; from now on a nearer one moves it."""
        queue = self._queue
        while queue and queue[0][2].done:
            heapq.heappop(queue)  # a timeout whose request already finished
        if self._alarm is None:
            return  # stopped while its inline wake ran
        self._alarm.set(queue[0][0] if queue else math.inf)
        self._waiting = True

    def _stopped(self, raise_cancel: object) -> trio.lowlevel.Abort:
        """Cancelled while asleep: the network stops, its alarm with it, for good. Left
        armable, a message queued as the run ended (or an inline wake going to sleep
        again) re-armed it, and its ring woke a finished task: trio's internal error."""
        if self._alarm is not None:
            self._alarm.set(math.inf)
        self._alarm = None
        self._waiting = False
        return trio.lowlevel.Abort.SUCCEEDED

    def _at(self, when: float, guard: Pending, action: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), guard, action))
        if self._waiting and self._alarm is not None and when < self._alarm.deadline:
            self._alarm.set(when)


class SimTransport:
    """One peer's attachment to a `SimNetwork`; same contract as the TCP transport."""

    def __init__(
        self, network: SimNetwork, identity: Identity, listen: Address, reachable: bool = True
    ) -> None:
        self.network = network
        self.identity = identity
        self.reachable = reachable
        self._listen = listen
        self._remote = Remote(identity.node_id, identity.public_key, listen)
        self._handler: Handler | None = None
        self._nursery: trio.Nursery | None = None
        self._ids = itertools.count()

    @property
    def listen(self) -> Address:
        return self._listen

    @property
    def bound(self) -> Address:
        return self._listen

    def set_advertised(
        self, listen: Address | None = None, routes: tuple[Route, ...] | None = None
    ) -> None:
        """What others learn of this peer from now on: its routes (a simulated peer keeps
        its one address)."""
        if routes is not None:
            self._remote = replace(self._remote, routes=routes)

    def received_from(self, node_id: bytes) -> int | None:
        """Messages arrive whole here: no count of bytes on their way to go by."""
        return None

    async def adopt_stream(self, stream: trio.abc.Stream, label: str) -> None:
        """The simulator delivers relayed requests itself; it never opens a session."""
        await stream.aclose()

    async def serve(
        self, handler: Handler, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        if self.network.is_up(self._listen):
            raise OSError(f"address {self._listen} already in use on the simulated network")
        try:
            async with trio.open_nursery() as nursery:
                self._handler, self._nursery = handler, nursery
                self.network._endpoints[self._listen] = self
                task_status.started()
                await trio.sleep_forever()
        finally:
            # A crash: requests in flight here are cancelled with the nursery and
            # their callers see a timeout, as with a host that vanished.
            if self.network._endpoints.get(self._listen) is self:
                del self.network._endpoints[self._listen]
            self._handler = self._nursery = None

    async def request(
        self, target: Contact | Address, message: Message, timeout: float, *, dialled: bool = False
    ) -> Reply:
        """`dialled` changes nothing here: every simulated request goes to the address."""
        address = target.address if isinstance(target, Contact) else target
        expected = target.node_id if isinstance(target, Contact) else None
        network = self.network
        peer = network._endpoint(address)
        if expected is not None and peer is not None and peer.identity.node_id != expected:
            raise PeerUnreachable(f"{address[0]}:{address[1]} is not the expected peer")
        payload = network._pack(next(self._ids) % 2**32, message)
        network.stats.sent += 1
        kind = message.TYPE.value
        network.stats.by_type[kind] = network.stats.by_type.get(kind, 0) + 1

        hops: list[Address] | None = None  # a relayed request's way; None: straight there
        if peer is not None and not peer.reachable:
            hops = network.relayed_hops(self._listen, target)
            if hops is None:
                raise PeerUnreachable(f"{address[0]}:{address[1]} is behind a NAT, with no relay")
        pending = Pending(trio.lowlevel.current_task())
        now = trio.current_time()
        if network.trace is not None:
            network.trace.append((now, self._listen, address, kind))
        if hops is None:
            latency = network.link_latency(self._listen, address)
            dropped = network._dropped(self._listen, address)
        else:
            latency, dropped = network._path_latency(hops), network._path_dropped(hops)
        back = None if hops is None else hops[::-1]
        network._at(now + timeout, pending, lambda: pending.finish(None))
        if not dropped:
            network._at(
                now + latency,
                pending,
                lambda: self._arrive(address, payload, pending, latency, back),
            )

        def abort(_: object) -> trio.lowlevel.Abort:
            pending.done = True
            return trio.lowlevel.Abort.SUCCEEDED

        answer: Packet | None = await trio.lowlevel.wait_task_rescheduled(abort)
        if answer is None or peer is None:
            raise PeerUnreachable(f"{address[0]}:{address[1]} did not answer within {timeout:g}s")
        network.stats.delivered += 1
        try:
            _, reply = network._unpack(answer)
        except WireError as exc:
            raise PeerUnreachable(f"malformed reply from {address}: {exc}") from None
        if isinstance(reply, ErrorReply):
            raise RemoteError(reply.reason)
        return Reply(peer._remote, reply, address)

    def _arrive(
        self,
        address: Address,
        payload: Packet,
        pending: Pending,
        latency: float,
        back: list[Address] | None,
    ) -> None:
        """The request reaches `address`: a live peer answers it, at once if it can."""
        peer = self.network._endpoint(address)
        if peer is None or peer._nursery is None or peer._nursery.cancel_scope.cancel_called:
            return  # nobody there: the caller's timeout decides
        try:
            request_id, message = self.network._unpack(payload)
        except WireError as exc:
            log.warning("dropping malformed request from %s: %s", self.listen, exc)
            return
        if message.TYPE not in ANSWERED_AT_ONCE:
            answer = peer._answer
            peer._nursery.start_soon(answer, self, request_id, message, pending, latency, back)
            return
        assert peer._handler is not None
        reply = run_at_once(answer_request(peer._handler, self._remote, message), message.TYPE)
        if reply is not None:
            peer._reply(self, request_id, reply, pending, latency, back)

    async def _answer(
        self,
        caller: SimTransport,
        request_id: int,
        message: Message,
        pending: Pending,
        latency: float,
        back: list[Address] | None,
    ) -> None:
        assert self._handler is not None
        reply = await answer_request(self._handler, caller._remote, message)
        self._reply(caller, request_id, reply, pending, latency, back)

    def _reply(
        self,
        caller: SimTransport,
        request_id: int,
        reply: Message,
        pending: Pending,
        latency: float,
        back: list[Address] | None,
    ) -> None:
        network = self.network
        encoded = network._pack(request_id, reply)
        if back is None:
            dropped = network._dropped(self._listen, caller.listen)
        else:
            dropped = network._path_dropped(back)
        if pending.done or dropped:
            return
        network._at(trio.current_time() + latency, pending, lambda: pending.finish(encoded))

    async def aclose(self) -> None:
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
