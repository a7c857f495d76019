"""`serve` as a relay and as a peer reached only through one: real processes on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import IO, Any

import pytest
import trio
from typer.testing import CliRunner

import p2pbackup.shares.messages  # noqa: F401
from p2pbackup.cli.app import app
from p2pbackup.cli.localmesh import CLI, LocalMesh
from p2pbackup.crypto.identity import Identity
from p2pbackup.dht.messages import Ping, Pong
from p2pbackup.errors import RemoteError
from p2pbackup.net.contact import Contact, Route
from p2pbackup.net.relay_client import RelayConnector
from p2pbackup.net.tcp import TcpTransport
from p2pbackup.shares.messages import PutShare
from tests.net.bounds_support import pong

pytestmark = pytest.mark.timeout(120)

NOWHERE = ("127.0.0.1", 1)


def relayed(stdout: IO[str]) -> tuple[bytes, list[Route]]:
    """The peer's node id and relay routes, from its events."""
    node_id, routes = None, []
    while line := stdout.readline():
        event: dict[str, Any] = json.loads(line)
        if event["event"] == "listening":
            node_id = bytes.fromhex(event["node_id"])
        if event["event"] == "relayed":
            routes = [Route.parse(text) for text in event["routes"]]
        if node_id is not None and routes:
            return node_id, routes
    raise AssertionError("serve ended before it was relayed")


async def reach(node_id: bytes, route: Route) -> None:
    """Ping the peer through `route` alone, then send it a share-sized request."""
    transport = TcpTransport(Identity.generate(), ("127.0.0.1", 0))
    transport.relay_dialer = RelayConnector(transport)
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.serve, pong)
        contact = Contact(node_id, *NOWHERE, (route,))
        reply = await transport.request(contact, Ping(), timeout=20)
        assert isinstance(reply.message, Pong) and reply.remote.node_id == node_id
        share = PutShare(bytes(20), 0, b"not a signed descriptor", bytes(1024 * 1024))
        with pytest.raises(RemoteError):  # it came through whole, and was judged
            await transport.request(contact, share, timeout=20)
        nursery.cancel_scope.cancel()


def test_a_relay_only_peer_is_reached_through_the_relay_it_chose(tmp_path: Path) -> None:
    mesh = LocalMesh(tmp_path / "mesh", 2, serve_args=["--relay-rate", "64MiB/s"], open_mesh=True)
    mesh.init_all()
    with mesh:
        mesh.start_peer(0, bootstrap=None)
        hidden = mesh.peers[1]
        args = ["serve", "--listen", "127.0.0.1:0", "--exempt-blocks", "loopback", "--json"]
        args += ["--relay-only", "--use-relay", mesh.bootstrap, "--bootstrap", mesh.bootstrap]
        process = subprocess.Popen(
            [*CLI, "--home", str(hidden.home), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert process.stdout is not None
            node_id, (route,) = relayed(process.stdout)
            assert route.relay is not None and str(route).endswith(f"@{mesh.bootstrap}")
            trio.run(reach, node_id, route)
        finally:
            process.kill()
            process.wait()


@pytest.mark.parametrize(
    ("option", "value"), [("--relay-rate", "fast"), ("--relay-total-rate", "0MiB/s")]
)
def test_a_bad_relay_rate_is_a_usage_error(tmp_path: Path, option: str, value: str) -> None:
    result = CliRunner().invoke(app, ["--home", str(tmp_path), "serve", option, value])
    assert result.exit_code == 2
    assert option in result.output
