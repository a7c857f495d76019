"""One peer of the NAT relay tests, run inside a network namespace:
`python -m tests.net.relay_nat_peer relay HOST:PORT` or
`python -m tests.net.relay_nat_peer peer HOST RELAY_HOST:PORT PUNCH [TARGET_ID ROUTE]`.

It prints what the test reads, one `WORD value` line each: a relay its
`READY`, and on SIGTERM the bytes it `CARRIED`; a peer its `ID` and its relay `ROUTE`
once reserved, and with a target, the `RESULT` of reaching it. Both run
until killed.
"""

from __future__ import annotations

import signal
import sys

import trio

import p2pbackup.shares.messages  # noqa: F401  (registers the share messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.contact import Contact, Route, parse_address
from p2pbackup.net.options import TcpOptions
from p2pbackup.net.relay_book import RelayLimits
from p2pbackup.net.relay_client import RelayClient, RelayConnector
from p2pbackup.net.relay_server import RelayServer
from p2pbackup.net.relay_wire import RELAY_CLIENT_REQUESTS, RELAY_SERVER_REQUESTS
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.shares.messages import PutShare, ShareStored
from p2pbackup.wire.messages import Message

OPTIONS = TcpOptions(dials_per_minute=600, dial_burst=600)


def say(word: str, value: object) -> None:
    print(word, value, flush=True)


async def relay(listen: str) -> None:
    transport = TcpTransport(Identity.generate(), parse_address(listen), OPTIONS)
    server = RelayServer(transport, RelayLimits(rate=64 * 2**20, total_rate=64 * 2**20))
    server.attach()

    async def answer(remote: Remote, message: Message) -> Message:
        if isinstance(message, RELAY_SERVER_REQUESTS):
            return await server.handle(remote, message)
        return Pong()

    with trio.open_signal_receiver(signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.serve, answer)
            say("READY", transport.identity.node_id.hex())
            async for _ in signals:
                say("CARRIED", server.carried)
                nursery.cancel_scope.cancel()
                break


async def peer(host: str, relay_at: str, punch: bool, target: list[str]) -> None:
    transport = TcpTransport(Identity.generate(), (host, 0), OPTIONS)
    client = RelayClient(
        transport, lambda: [parse_address(relay_at)], lambda routes: None, want=1, punch=punch
    )

    def public_host() -> str | None:
        return next(iter(client.observed.values()), None)

    connector = RelayConnector(transport, public_host=public_host if punch else None)
    transport.relay_dialer = connector

    async def answer(remote: Remote, message: Message) -> Message:
        if isinstance(message, RELAY_CLIENT_REQUESTS):
            return await client.handle(remote, message)
        if isinstance(message, PutShare):
            return ShareStored()
        return Pong()

    async with trio.open_nursery() as nursery:
        await nursery.start(transport.serve, answer)
        await nursery.start(client.run)
        while not client.live:
            await trio.sleep(0.02)
        say("ID", transport.identity.node_id.hex())
        say("ROUTE", client.routes[0])
        if target:
            contact = Contact(bytes.fromhex(target[0]), "127.0.0.1", 1, (Route.parse(target[1]),))
            try:
                pong = await transport.request(contact, Ping(), timeout=20)
                share = PutShare(bytes(20), 0, b"descriptor", bytes(2**20))
                stored = await transport.request(contact, share, timeout=20)
                ok = isinstance(pong.message, Pong) and isinstance(stored.message, ShareStored)
                say("RESULT", f"ok={ok} punched={connector.punched}")
            except Exception as exc:
                say("RESULT", f"ok=False error={exc}")
        await trio.sleep_forever()


def main() -> None:
    role, *args = sys.argv[1:]
    if role == "relay":
        trio.run(relay, args[0])
    else:
        trio.run(peer, args[0], args[1], args[2] == "1", args[3:])


if __name__ == "__main__":
    main()
