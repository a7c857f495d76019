"""What a relay costs: `python -m benchmarks.relay [MiB]`.

The same stream of share-sized requests (1 MiB PutShare, answered at once)
goes from one peer to another over a direct connection, then through a relay
on loopback whose rate limits are lifted, so what is measured is the relay's
splice and the extra hop, not its limits. Rates are payload bytes over
seconds in MB = 10^6 bytes; nothing is enforced. `measure` is the function
`make bench` calls; on the NAT testbed the same function runs between
namespaces.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

import trio

import p2pbackup.shares.messages  # noqa: F401  (registers the share messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import RelayClient, RelayConnector
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_wire import RELAY_CLIENT_REQUESTS, RELAY_SERVER_REQUESTS
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import PutShare, ShareStored
from p2pbackup.wire.messages import Message

UNLIMITED = RelayLimits(rate=1e12, total_rate=1e12, request_burst=1e6)
SHARE = 1024 * 1024
ROUNDS = 3


@dataclass(frozen=True)
class RelayFigures:
    payload_bytes: int
    direct_seconds: float
    relayed_seconds: float

    @property
    def direct_mb_s(self) -> float:
        return self.payload_bytes / 1e6 / self.direct_seconds

    @property
    def relayed_mb_s(self) -> float:
        return self.payload_bytes / 1e6 / self.relayed_seconds

    @property
    def ratio(self) -> float:
        """Relayed throughput as a fraction of direct."""
        return self.relayed_mb_s / self.direct_mb_s


async def _stream(sender: TcpTransport, to: Contact, count: int) -> float:
    """Seconds to send `count` shares one after another, each answered."""
    share = PutShare(bytes(20), 0, b"descriptor", bytes(SHARE))
    start = time.perf_counter()
    for _ in range(count):
        reply = await sender.request(to, share, timeout=60)
        assert isinstance(reply.message, ShareStored)
    return time.perf_counter() - start


async def _measure(count: int, host: str) -> RelayFigures:
    peers = [TcpTransport(Identity.generate(), (host, 0)) for _ in range(3)]
    relay, hidden, sender = peers
    server = RelayServer(relay, UNLIMITED)
    server.attach()
    client = RelayClient(hidden, lambda: [relay.listen], lambda routes: None, want=1)
    sender.relay_dialer = RelayConnector(sender)

    async def answer(remote: Remote, message: Message) -> Message:
        if isinstance(message, RELAY_SERVER_REQUESTS):
            return await server.handle(remote, message)
        if isinstance(message, RELAY_CLIENT_REQUESTS):
            return await client.handle(remote, message)
        return ShareStored()

    async with trio.open_nursery() as nursery:
        for peer in peers:
            await nursery.start(peer.serve, answer)
        await nursery.start(client.run)
        while not client.live:
            await trio.sleep(0.01)
        direct = Contact(hidden.identity.node_id, *hidden.listen)
        relayed = Contact(hidden.identity.node_id, host, 1, (*client.routes,))
        assert all(isinstance(route, Route) for route in relayed.routes)
        await _stream(sender, direct, 2)  # connections up and warm, both ways
        await _stream(sender, relayed, 2)
        # Turns, alternating, so a busy moment of the machine does not fall on one side.
        times: dict[str, list[float]] = {"direct": [], "relayed": []}
        for _ in range(ROUNDS):
            times["direct"].append(await _stream(sender, direct, count))
            times["relayed"].append(await _stream(sender, relayed, count))
        nursery.cancel_scope.cancel()
    return RelayFigures(
        count * SHARE, statistics.median(times["direct"]), statistics.median(times["relayed"])
    )


def measure(mib: int = 64, host: str = "127.0.0.1") -> RelayFigures:
    """Direct against relayed throughput of `mib` 1 MiB shares on `host`."""
    return trio.run(_measure, mib, host)


def main() -> None:
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    figures = measure(mib)
    print(f"{mib} MiB of 1 MiB shares, one at a time, on loopback (median of {ROUNDS}):")
    print(f"  direct   {figures.direct_mb_s:8.1f} MB/s")
    print(f"  relayed  {figures.relayed_mb_s:8.1f} MB/s  ({figures.ratio:.0%} of direct)")


if __name__ == "__main__":
    main()
