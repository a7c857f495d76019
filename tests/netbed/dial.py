"""Run on a testbed host: dial a peer over our TCP transport, complete the
handshake, PING it, and print the node id it proved and the routes it
advertised, one a line (exit 1 if it could not).

`python -m tests.netbed.dial OWN_ADDRESS HOST PORT [TIMEOUT]`
"""

from __future__ import annotations

import sys

import trio

import p2pbackup.dht.messages  # noqa: F401  (registers the DHT messages)
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import P2PBackupError
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.net.transport import Remote
from p2pbackup.wire.messages import Message


async def _pong(remote: Remote, message: Message) -> Message:
    return Pong()


async def dial(own: str, host: str, port: int, timeout: float) -> int:
    transport = TcpTransport(Identity.generate(), (own, 0))
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.serve, _pong)
        try:
            reply = await transport.request((host, port), Ping(), timeout=timeout)
        except P2PBackupError as exc:
            print(f"cannot ping {host}:{port}: {exc}", file=sys.stderr)
            return 1
        finally:
            nursery.cancel_scope.cancel()
    assert isinstance(reply.message, Pong)
    print(reply.remote.node_id.hex())
    for route in reply.remote.routes:
        print(route)
    return 0


if __name__ == "__main__":
    own, host, port = sys.argv[1:4]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 10.0
    sys.exit(trio.run(dial, own, host, int(port), timeout))
