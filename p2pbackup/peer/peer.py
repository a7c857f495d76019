"""A peer: everything one node of the mesh runs, inside one nursery.

The same class runs over TCP in `serve` and over the simulated network in
the simulator; only the transport, the clock and the random generator differ.
Cancelling `run` stops the peer and leaves nothing behind.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.config import DhtConfig
from p2pbackup.dht.node import DHT_REQUESTS, DhtNode
from p2pbackup.dht.record_store import RecordStore
from p2pbackup.errors import P2PBackupError
from p2pbackup.mesh.gate import ROUTABLE
from p2pbackup.mesh.messages import JOINER_REQUESTS
from p2pbackup.net.transport import Address, Remote, Transport
from p2pbackup.wire.messages import Message

log = logging.getLogger("p2pbackup.peer")

RequestHandler = Callable[[Remote, Message], Awaitable[Message]]


@dataclass(frozen=True)
class PeerConfig:
    dht: DhtConfig = field(default_factory=DhtConfig)
    bootstrap: tuple[Address, ...] = ()
    join_retry: float = 1.0
    join_retry_max: float = 30.0


class Peer:
    """One node of the mesh."""

    def __init__(
        self,
        identity: Identity,
        transport: Transport,
        config: PeerConfig,
        rng: random.Random,
        records: RecordStore | None = None,
        own: RecordStore | None = None,
    ) -> None:
        self.identity = identity
        self.transport = transport
        self.config = config
        self.rng = rng
        self.dht = DhtNode(transport, identity.node_id, config.dht, rng, records, own)
        self._handlers: dict[type[Message], RequestHandler] = {
            kind: self.dht.handle for kind in DHT_REQUESTS
        }
        self._cancel: trio.CancelScope | None = None
        self._tasks: list[Callable[..., Awaitable[None]]] = []
        self._nursery: trio.Nursery | None = None
        self.joined = trio.Event()

    @property
    def node_id(self) -> bytes:
        return self.identity.node_id

    def add_handler(self, kind: type[Message], handler: RequestHandler) -> None:
        self._handlers[kind] = handler

    def add_task(self, task: Callable[..., Awaitable[None]]) -> None:
        """Run `task` in this peer's nursery (now, if it already serves): it stops with the peer."""
        self._tasks.append(task)
        if self._nursery is not None:
            self._nursery.start_soon(task)

    async def handle(self, remote: Remote, message: Message) -> Message:
        if remote.standing not in ROUTABLE and type(message) not in JOINER_REQUESTS:
            # A joiner holds an invite and may redeem it; nothing else is served.
            log.info(
                "refused %s from %s: not a member of this mesh",
                message.TYPE,
                remote.node_id.hex()[:12],
            )
            raise P2PBackupError("not a member of this mesh: only an invite may be redeemed")
        handler = self._handlers.get(type(message))
        if handler is None:
            raise P2PBackupError(f"{message.TYPE} is not a request this peer answers")
        if handler != self.dht.handle:  # a bound method is a new object each time
            self.dht.observe(remote)
        return await handler(remote, message)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (or `stop`)."""
        with trio.CancelScope() as scope:
            self._cancel = scope
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(self.transport.serve, self.handle)
                    await nursery.start(self.dht.run)
                    for task in self._tasks:
                        await nursery.start(task)
                    self._nursery = nursery
                    # A peer back from a restart knows its acquaintances (its book)
                    # even where it was given no address to start from.
                    if self.config.bootstrap or len(self.dht.peers):
                        nursery.start_soon(self._join)
                    else:
                        self.joined.set()
                    if len(self.dht.own):
                        nursery.start_soon(self._republish_own)
                    task_status.started()
            finally:
                self._nursery = None  # closed: a task added late is kept, not started
        await self.transport.aclose()

    def stop(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    async def _republish_own(self) -> None:
        """Once joined, write this peer's own records again: their replicas may all have
        restarted empty. Retried a few times while too few peers answer (the peers of a
        mesh restart together); after that the DHT's schedule carries on."""
        await self.joined.wait()
        delay = self.config.join_retry
        while await self.dht.replication.republish_own() < len(self.dht.own):
            if delay > self.config.join_retry_max:
                return
            await trio.sleep(delay * (0.5 + self.rng.random()))
            delay *= 2

    async def _join(self) -> None:
        """Keep trying the bootstrap addresses: the first peers of a mesh start together."""
        delay = self.config.join_retry
        while True:
            if await self.dht.bootstrap(self.config.bootstrap):
                self.joined.set()
                return
            log.info("no bootstrap or known peer answered; retrying in %.0fs", delay)
            await trio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, self.config.join_retry_max)
