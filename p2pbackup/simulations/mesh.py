"""A mesh of real `Peer`s on a `SimNetwork`: start, crash, partition, all from one seed.

Every scenario and the simulated-mesh tests build on this. Peers run in the
mesh's nursery, each under its own cancel scope, so a crash is a cancel and
leaves nothing running.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import trio

from p2pbackup.base.ids import id_int
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.config import DhtConfig
from p2pbackup.net.sim import SimNetwork
from p2pbackup.net.transport import Address
from p2pbackup.peer.peer import Peer, PeerConfig
from p2pbackup.simulations import relaying

SIM_DHT = DhtConfig(rpc_timeout=2.0)


def _addresses(bootstrap: Address | tuple[Address, ...] | None) -> tuple[Address, ...]:
    if not bootstrap:
        return ()
    if isinstance(bootstrap[0], str):
        return (bootstrap,)  # one (host, port) pair
    return bootstrap


@dataclass(frozen=True)
class MeshParams:
    """What every scenario's mesh is made from: how many peers, and the seed."""

    peers: int = 100
    seed: int = 1


@dataclass
class SimPeer:
    peer: Peer
    address: Address
    alive: bool = True
    reachable: bool = True  # False: behind a NAT, reached through relays

    @property
    def node_id(self) -> bytes:
        return self.peer.node_id


@dataclass
class SimMesh:
    """Peers on one simulated network, driven from one random generator."""

    nursery: trio.Nursery
    rng: random.Random
    network: SimNetwork
    dht: DhtConfig = SIM_DHT
    peers: list[SimPeer] = field(default_factory=list)
    # The share of peers after the first behind a NAT, reached only through relays.
    relayed: float = 0.0
    _next_host: int = 1
    # Positions in `peers` of the live ones, ascending: a churn week picks bootstrap
    # peers among the live ones at every return, and a scan of ten thousand peers each
    # time was two fifths of its CPU.
    _up: list[int] = field(default_factory=list)
    _position: dict[bytes, int] = field(default_factory=dict)

    @classmethod
    async def create(
        cls,
        nursery: trio.Nursery,
        seed: int,
        *,
        dht: DhtConfig = SIM_DHT,
        loss: float = 0.0,
        encode: bool = True,
        relayed: float = 0.0,
    ) -> SimMesh:
        rng = random.Random(seed)
        network = SimNetwork(random.Random(rng.getrandbits(64)), loss=loss, encode=encode)
        await nursery.start(network.run)
        return cls(nursery, rng, network, dht, relayed=relayed)

    def _new_address(self) -> Address:
        """Each peer in an IPv4 /24 of its own, as strangers on the internet are.

        The per-block limits (decision 0023) would otherwise see one mesh as one
        flood; 10.0.1.1, 10.0.2.1, ... and on into 11.x.y.1 past 65,535 peers."""
        host = self._next_host
        self._next_host += 1
        return (f"{10 + (host >> 16)}.{host >> 8 & 255}.{host & 255}.1", 4000)

    async def add_peer(
        self, bootstrap: Address | tuple[Address, ...] | None = None, *, wait_joined: bool = True
    ) -> SimPeer:
        identity = Identity.from_seed(self.rng.randbytes(32))
        address = self._new_address()
        # Drawn only when asked for, so runs without relayed peers replay as before.
        reachable = not (self.relayed and self.peers and self.rng.random() < self.relayed)
        transport = self.network.transport(identity, address, reachable=reachable)
        config = PeerConfig(dht=self.dht, bootstrap=_addresses(bootstrap))
        peer = Peer(identity, transport, config, random.Random(self.rng.getrandbits(64)))
        if self.relayed:
            relaying.equip(self.network, transport, peer)
        await self.nursery.start(peer.run)
        sim_peer = self.enlist(SimPeer(peer, address, reachable=reachable))
        if wait_joined:
            await peer.joined.wait()
        return sim_peer

    async def restart(
        self,
        sim_peer: SimPeer,
        bootstrap: Address | tuple[Address, ...],
        *,
        disk_kept: bool = True,
    ) -> None:
        """A crashed peer comes back: same id, same address, a fresh process.

        With its disk it keeps its book of first-hand acquaintances, as `serve` does
        (the maintenance memory file, decision 0030): it does not dial back every
        peer it had already checked at the same address (decision 0055).
        """
        identity = sim_peer.peer.identity
        book = sim_peer.peer.dht.peers
        # A peer crashed just now may not have left its address yet: its tasks end at
        # their next turn, and the new process must not find the address taken.
        for _ in range(1000):
            if not self.network.is_up(sim_peer.address):
                break
            await trio.sleep(0)
        transport = self.network.transport(identity, sim_peer.address, reachable=sim_peer.reachable)
        config = PeerConfig(dht=self.dht, bootstrap=_addresses(bootstrap))
        peer = Peer(identity, transport, config, random.Random(self.rng.getrandbits(64)))
        if disk_kept:
            peer.dht.peers = book
        if self.relayed:
            relaying.equip(self.network, transport, peer)
        await self.nursery.start(peer.run)
        sim_peer.peer = peer
        self._mark(sim_peer, alive=True)
        await peer.joined.wait()

    async def grow(self, count: int, *, concurrency: int = 1) -> None:
        """Add peers, each joining through the first peer, `concurrency` at a time."""
        if not self.peers:
            await self.add_peer()
            count -= 1
        bootstrap = self.peers[0].address
        while count > 0:
            wave = min(concurrency, count)
            async with trio.open_nursery() as nursery:
                for _ in range(wave):
                    nursery.start_soon(self._add_joined, bootstrap)
            count -= wave

    async def _add_joined(self, bootstrap: Address) -> None:
        await self.add_peer(bootstrap)

    def enlist(self, sim_peer: SimPeer) -> SimPeer:
        """Count a started peer in: every peer of the mesh joins through here."""
        self._position[sim_peer.node_id] = len(self.peers)
        self.peers.append(sim_peer)
        if sim_peer.alive:
            self._up.append(len(self.peers) - 1)
        return sim_peer

    def _mark(self, sim_peer: SimPeer, *, alive: bool) -> None:
        """Set whether a peer is up, keeping the live positions sorted."""
        if sim_peer.alive == alive:
            return
        sim_peer.alive = alive
        position = self._position[sim_peer.node_id]
        if alive:
            bisect.insort(self._up, position)
        else:
            del self._up[bisect.bisect_left(self._up, position)]

    def crash(self, sim_peer: SimPeer) -> None:
        sim_peer.peer.stop()
        self._mark(sim_peer, alive=False)

    def live(self) -> list[SimPeer]:
        """The live peers, in the order they first joined."""
        peers = self.peers
        return [peers[i] for i in self._up]

    def pick_live(self, rng: random.Random, count: int) -> list[SimPeer]:
        """`rng.sample(self.live(), count)` (at most all of them), without building the
        list: sampling a range of the same length draws the same numbers."""
        up, peers = self._up, self.peers
        return [peers[up[i]] for i in rng.sample(range(len(up)), min(count, len(up)))]

    def __iter__(self) -> Iterator[SimPeer]:
        return iter(self.peers)

    def true_closest(self, target: bytes, count: int) -> list[bytes]:
        """Ground truth: the node ids of the `count` live peers closest to `target`.

        A partial selection, not a sort of every live peer: with ten thousand
        peers and a check per lookup, the full sort was a cost of its own."""
        key = id_int(target)
        live = (p.node_id for p in self.live())
        return heapq.nsmallest(count, live, key=lambda i: id_int(i) ^ key)

    def stop(self) -> None:
        """Stop every peer and the network, so the enclosing nursery can exit."""
        for sim_peer in self.live():
            self.crash(sim_peer)
        self.nursery.cancel_scope.cancel()
