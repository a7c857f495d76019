"""A peer process with few descriptors under a flood of idle connections: the
caps keep it below its limit, so accept never fails, the flood past the cap is
closed at once, and a peer connected before is still answered."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.net.contact import Contact
from p2pbackup.net.limits import connection_caps
from p2pbackup.net.options import TcpOptions
from tests.net.bounds_support import raw_streams, serving, wait_closed

DESCRIPTORS = 128
FLOOD = 3 * DESCRIPTORS
TOTAL, STRANGERS = connection_caps(DESCRIPTORS)

SERVER = textwrap.dedent(
    f"""
    import logging, resource, sys
    import trio
    import p2pbackup.dht.messages
    from p2pbackup.crypto.identity import Identity
    from p2pbackup.dht.messages import Pong
    from p2pbackup.net.options import TcpOptions
    from p2pbackup.net.tcp import TcpTransport

    resource.setrlimit(resource.RLIMIT_NOFILE, ({DESCRIPTORS}, {DESCRIPTORS}))
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def pong(remote, message):
        return Pong()

    async def main():
        transport = TcpTransport(
            Identity.generate(), ("127.0.0.1", 0), TcpOptions(handshake_timeout=60.0)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.serve, pong)
            print(transport.identity.node_id.hex(), transport.listen[1], flush=True)
            await trio.sleep(120)
            nursery.cancel_scope.cancel()

    trio.run(main)
    """
)


@pytest.fixture
def peer_process(tmp_path: Path) -> Iterator[tuple[Contact, subprocess.Popen[str], Path]]:
    log = tmp_path / "peer.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the peer process did not start: {log.read_text()}"
        node_id, port = line.split()
        yield Contact(bytes.fromhex(node_id), "127.0.0.1", int(port)), process, log
    finally:
        process.kill()
        process.wait()


async def test_a_flood_past_the_descriptor_limit_never_makes_accept_fail(
    nursery: trio.Nursery, peer_process: tuple[Contact, subprocess.Popen[str], Path]
) -> None:
    target, process, log = peer_process
    async with serving(nursery, TcpOptions()) as honest:
        assert isinstance((await honest.request(target, Ping(), timeout=10)).message, Pong)
        async with raw_streams(FLOOD, target.address) as streams:
            closed = [trio.Event() for _ in streams]
            for stream, event in zip(streams, closed, strict=True):
                nursery.start_soon(wait_closed, stream, event)
            # All but the strangers the cap admits are closed at once (the limit
            # only turns a peer that keeps them all into a failure, not a hang).
            with trio.fail_after(60):
                for event in closed[STRANGERS:]:
                    await event.wait()
            assert not any(event.is_set() for event in closed[:STRANGERS])
            reply = await honest.request(target, Ping(), timeout=10)
            assert isinstance(reply.message, Pong)
    assert process.poll() is None, log.read_text()
    text = log.read_text()
    assert "turning away connections" in text
    assert "Too many open files" not in text and "cannot accept" not in text, text
